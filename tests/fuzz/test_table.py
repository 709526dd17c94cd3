"""The table of hostile inputs: every case is refused with one line and exit 2, in-process.

Each case names the files it needs (written into a fresh folder, which is the working
directory) and the command line; the expected fragment of the message says the
refusal is the right one (the file, the option or the limit is named). Cases that need a
fresh interpreter (devices as stdout, closed pipes, memory limits, checkpoints) are in
`test_subprocess.py`.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.fuzz.conftest import check_refused, episode

FIFO, LOOP, DIR, DANGLING = object(), object(), object(), object()
OK = episode(seed=1) + episode(seed=2, success=False)
DEEP = "[" * 100_000 + "]" * 100_000
BIG = "9" * 5000


def _npz(**arrays: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _huge_header_npz() -> bytes:
    """An .npz whose one member's header declares 10^12 float64 values (8 TB) in 100 bytes."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1))
    header["shape"] = (10**12,)
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return _zip({"pred_actions.npy": buf.getvalue() + b"\0" * 64})


_TARGET = np.zeros((4, 7))
PREDICTIONS = {
    "not-npy-member": (_zip({"pred_actions.txt": b"1,2,3"}), "not a .npy array"),
    "single-npy": (None, "single .npy array"),
    "truncated-zip": (_npz(pred_actions=_TARGET, target_actions=_TARGET)[:300], "npz"),
    "huge-header": (_huge_header_npz(), "declares shape"),
    "object-array": (_npz(pred_actions=np.array([{"a": 1}], dtype=object)), "object array"),
    "non-utf8-labels": (
        _npz(pred_actions=_TARGET, target_actions=_TARGET, task=np.array([b"\xff\xfe"] * 4)),
        "not UTF-8",
    ),
    "random-bytes": (os.urandom(512) if False else bytes(range(256)) * 2, "npz"),
    "empty": (b"", "npz"),
}

# (id, files, argv, fragment)
CASES: list[tuple[str, dict[str, object], list[str], str]] = [
    # -- numbers --------------------------------------------------------------------------
    ("wilson-superscript", {}, ["wilson", "-k", "²", "-n", "5"], "--successes"),
    ("wilson-arabic-digit", {}, ["wilson", "-k", "٣", "-n", "5"], "whole number"),
    ("wilson-huge-n", {}, ["wilson", "-k", "1", "-n", "9" * 400], "--trials"),
    (
        "wilson-conf-1-eps",
        {},
        ["wilson", "-k", "1", "-n", "5", "-c", "0.9999999999999999"],
        "confidence",
    ),
    ("wilson-conf-nan", {}, ["wilson", "-k", "1", "-n", "5", "-c", "nan"], "confidence"),
    ("wilson-conf-pct", {}, ["wilson", "-k", "1", "-n", "5", "-c", "100%"], "confidence"),
    (
        "plan-alpha-subnormal",
        {},
        ["plan", "--p0", "0.5", "--p1", "0.7", "--alpha", "1e-320"],
        "--alpha",
    ),
    ("plan-power-1", {}, ["plan", "--p0", "0.5", "--p1", "0.7", "--power", "1"], "--power"),
    ("plan-p0-inf", {}, ["plan", "--p0", "inf", "--p1", "0.7"], "--p0"),
    ("plan-trials-huge", {}, ["plan", "--trials", "1" + "0" * 30], "--trials"),
    ("plan-half-width-tiny", {}, ["plan", "--half-width", "1e-300"], "--half-width"),
    ("sampling-400-digits", {}, ["sampling", "--counts", f"a={'9' * 400},b=3"], "count"),
    (
        "sampling-T-subnormal",
        {},
        ["sampling", "--counts", "a=5,b=3", "-T", "5e-324"],
        "temperature",
    ),
    ("sampling-T-nan", {}, ["sampling", "--counts", "a=5,b=3", "-T", "nan"], "temperature"),
    ("sampling-T-negative", {}, ["sampling", "--counts", "a=5,b=3", "-T", "-1"], "temperature"),
    ("sampling-count-negative", {}, ["sampling", "--counts", "a=-5,b=3"], "count"),
    ("report-seed-negative", {"e.jsonl": OK}, ["report", "e.jsonl", "--seed", "-1"], "--seed"),
    ("report-seed-2^64", {"e.jsonl": OK}, ["report", "e.jsonl", "--seed", str(2**64)], "--seed"),
    (
        "report-bootstrap-1e12",
        {"e.jsonl": OK},
        ["report", "e.jsonl", "--bootstrap", str(10**12)],
        "--bootstrap",
    ),
    (
        "report-bootstrap-0",
        {"e.jsonl": OK},
        ["report", "e.jsonl", "--bootstrap", "0"],
        "--bootstrap",
    ),
    (
        "report-empty-default-split",
        {"e.jsonl": OK},
        ["report", "e.jsonl", "--default-split", ""],
        "--default-split",
    ),
    ("report-conf-zero", {"e.jsonl": OK}, ["report", "e.jsonl", "-c", "0"], "confidence"),
    ("offline-bins-1e9", {}, ["offline", "--predictions", "p.npz", "--bins", str(10**9)], "--bins"),
    ("offline-low-inf", {}, ["offline", "--predictions", "p.npz", "--low=-inf"], "--low"),
    ("offline-seed-2^63", {}, ["offline", "x.pt", "--seed", str(2**63)], "--seed"),
    ("online-trials-zero", {}, ["online", "expert", "--trials", "0"], "--trials"),
    ("online-batch-huge", {}, ["online", "expert", "--batch-size", str(10**9)], "--batch-size"),
    (
        "diagnose-task-counts-huge",
        {"m.jsonl": '{"step": 0, "loss": 1.0}\n'},
        ["diagnose", "m.jsonl", "--task-counts", f"a={'9' * 30}"],
        "count",
    ),
    # -- episode files ----------------------------------------------------------------------
    (
        "duplicate-key",
        {
            "e.jsonl": '{"task": "a", "split": "seen", "seed": 1, "success": true, "success": false}\n'
        },
        ["report", "e.jsonl"],
        "duplicate key 'success'",
    ),
    (
        "deep-nesting",
        {"e.jsonl": '{"task": "a", "x": ' + DEEP + "}\n"},
        ["report", "e.jsonl"],
        "nested deeper",
    ),
    (
        "deep-nesting-101",
        {"e.jsonl": episode(x=eval("[" * 101 + "]" * 101))},
        ["report", "e.jsonl"],
        "nested deeper than 100",
    ),
    (
        "5000-digit-seed",
        {"e.jsonl": '{"task": "a", "split": "s", "seed": ' + BIG + ', "success": true}\n'},
        ["report", "e.jsonl"],
        "e.jsonl:1",
    ),
    ("seed-2^63", {"e.jsonl": episode(seed=2**63)}, ["report", "e.jsonl"], "64-bit"),
    ("seed-below-int64", {"e.jsonl": episode(seed=-(2**63) - 1)}, ["report", "e.jsonl"], "64-bit"),
    (
        "seed-400-digits",
        {"e.csv": "task,split,seed,success\na,seen," + "9" * 400 + ",1\n"},
        ["report", "e.csv"],
        "64-bit",
    ),
    (
        "lone-surrogate-task",
        {"e.jsonl": '{"task": "\\ud800", "split": "seen", "seed": 1, "success": true}\n'},
        ["report", "e.jsonl"],
        "not valid unicode",
    ),
    (
        "lone-surrogate-split",
        {"e.jsonl": '{"task": "a", "split": "x\\udfff", "seed": 1, "success": true}\n'},
        ["report", "e.jsonl", "--json"],
        "not valid unicode",
    ),
    (
        "not-utf8",
        {"e.jsonl": OK.encode() + b'{"task": "\xff"}\n'},
        ["report", "e.jsonl"],
        "e.jsonl:3: not UTF-8",
    ),
    ("utf16", {"e.jsonl": OK.encode("utf-16")}, ["report", "e.jsonl"], "e.jsonl"),
    (
        "nan-success",
        {"e.jsonl": '{"task": "a", "split": "s", "seed": 1, "success": NaN}\n'},
        ["report", "e.jsonl"],
        "success",
    ),
    ("float-seed", {"e.jsonl": episode(seed=1.5)}, ["report", "e.jsonl"], "seed"),
    ("bool-seed", {"e.jsonl": episode(seed=True)}, ["report", "e.jsonl"], "seed"),
    ("list-line", {"e.jsonl": OK + "[1, 2]\n"}, ["report", "e.jsonl"], "e.jsonl:3"),
    (
        "duplicate-episode",
        {"e.jsonl": OK + episode(seed=1)},
        ["report", "e.jsonl"],
        "duplicate episode",
    ),
    (
        "duplicate-across-files",
        {"a.jsonl": OK, "b.jsonl": OK},
        ["report", "a.jsonl", "b.jsonl"],
        "already read at a.jsonl:1",
    ),
    ("empty-file", {"e.jsonl": ""}, ["report", "e.jsonl"], "no episodes"),
    ("only-blank-lines", {"e.jsonl": "\n\n  \n"}, ["report", "e.jsonl"], "no episodes"),
    (
        "wrong-schema",
        {"e.jsonl": episode(schema="vla-eval/episode/9")},
        ["report", "e.jsonl"],
        "schema",
    ),
    ("missing-file", {}, ["report", "nope.jsonl"], "no such"),
    ("folder", {"d": DIR}, ["report", "d"], "folder"),
    ("fifo", {"f.jsonl": FIFO}, ["report", "f.jsonl"], "not a regular file"),
    ("dev-zero", {}, ["report", "/dev/zero"], "not a regular file"),
    ("symlink-loop", {"l.jsonl": LOOP}, ["report", "l.jsonl"], "symbolic links"),
    ("dangling-link", {"l.jsonl": DANGLING}, ["report", "l.jsonl"], "l.jsonl"),
    (
        "csv-two-success-columns",
        {"e.csv": "task,split,seed,success,success\na,seen,1,1,0\n"},
        ["report", "e.csv"],
        "'success' 2 times",
    ),
    (
        "csv-bad-flag",
        {"e.csv": "task,split,seed,success\na,seen,1,maybe\n"},
        ["report", "e.csv"],
        "e.csv:2",
    ),
    (
        "csv-ragged",
        {"e.csv": "task,split,seed,success\na,seen,1\n"},
        ["report", "e.csv"],
        "columns",
    ),
    (
        "csv-half-success",
        {"e.csv": "task,seed,success\na,1,0.5\n"},
        ["report", "e.csv"],
        "e.csv:2: success must be",
    ),
    (
        "csv-task-in-two-groups",
        {"e.csv": "task,seed,success,group\na,1,1,g1\na,2,1,g2\n"},
        ["report", "e.csv"],
        "e.csv:3: task 'a' is in group 'g2'",
    ),
    (
        "lerobot-float-seed",
        {"eval_info.json": '{"per_episode": [{"episode_ix": 0, "success": true, "seed": 1.5}]}'},
        ["report", "eval_info.json"],
        "per_episode[0]: seed must be an integer",
    ),
    (
        "lerobot-suite-count-lies",
        {
            "eval_info.json": '{"per_task": [{"task_group": "g", "task_id": 0, "metrics": '
            '{"successes": [true, false]}}], "overall": {"n_episodes": 3, "pc_success": 50.0}}'
        },
        ["report", "eval_info.json"],
        "overall.n_episodes is 3",
    ),
    (
        "lerobot-suite-no-group",
        {"eval_info.json": '{"per_task": [{"task_id": 0, "metrics": {"successes": [true]}}]}'},
        ["report", "eval_info.json"],
        "per_task[0]: task_group must be",
    ),
    (
        "lerobot-rate-lies",
        {
            "eval_info.json": '{"per_episode": [{"episode_ix": 0, "success": true, "seed": 3}], '
            '"aggregated": {"pc_success": 0.0}}'
        },
        ["report", "eval_info.json"],
        "aggregated.pc_success is 0.0",
    ),
    (
        "csv-not-utf8",
        {"e.csv": b"task,split,seed,success\n\xff,seen,1,1\n"},
        ["report", "e.csv"],
        "UTF-8",
    ),
    (
        "csv-nul",
        {"e.csv": b"task,split,seed,success\na\0,seen,1,1\n"},
        ["report", "e.csv"],
        "e.csv",
    ),
    (
        "lerobot-dup-key",
        {"eval_info.json": '{"per_episode": [], "per_episode": [{"success": true}]}'},
        ["report", "eval_info.json"],
        "duplicate key",
    ),
    (
        "lerobot-deep",
        {"eval_info.json": '{"per_episode": ' + DEEP + "}"},
        ["report", "eval_info.json"],
        "nested deeper",
    ),
    (
        "lerobot-bad-success",
        {"eval_info.json": '{"per_episode": [{"success": "yes"}]}'},
        ["report", "eval_info.json"],
        "success",
    ),
    (
        "lerobot-not-json",
        {"eval_info.json": "{per_episode"},
        ["report", "eval_info.json"],
        "malformed JSON",
    ),
    ("unknown-kind", {"e.txt": "hello\n"}, ["report", "e.txt"], "unknown episode file kind"),
    (
        "compare-dup-key",
        {
            "a.jsonl": OK,
            "b.jsonl": '{"task": "a", "task": "b", "split": "s", "seed": 1, "success": true}\n',
        },
        ["compare", "a.jsonl", "b.jsonl"],
        "duplicate key 'task'",
    ),
    # -- other options ------------------------------------------------------------------------
    (
        "online-resume-not-utf8",
        {"e.jsonl": OK.encode() + b"\xff\xfe\n"},
        ["online", "expert", "--out", "e.jsonl", "--resume", "--trials", "1", "--no-progress"],
        "e.jsonl:3: not UTF-8",
    ),
    (
        "online-resume-dup-key",
        {"e.jsonl": '{"task": "pick", "task": "x", "split": "seen", "seed": 0, "success": true}\n'},
        ["online", "expert", "--out", "e.jsonl", "--resume", "--trials", "1", "--no-progress"],
        "duplicate key",
    ),
    (
        "online-shard-zero",
        {},
        ["online", "expert", "--shard", "1/0", "--out", "s.jsonl"],
        "--shard",
    ),
    (
        "online-shard-text",
        {},
        ["online", "expert", "--shard", "x/y", "--out", "s.jsonl"],
        "--shard",
    ),
    (
        "online-shard-huge",
        {},
        ["online", "expert", "--shard", "9" * 30 + "/1", "--out", "s.jsonl"],
        "--shard",
    ),
    (
        "online-env-unknown",
        {},
        ["online", "expert", "--env", "nope", "--out", "s.jsonl"],
        "unknown environment",
    ),
    (
        "online-task-unknown",
        {},
        ["online", "expert", "--tasks", "nope", "--out", "s.jsonl"],
        "unknown task",
    ),
    (
        "online-splits-empty",
        {},
        ["online", "expert", "--splits", ",", "--out", "s.jsonl"],
        "comma-separated",
    ),
    (
        "online-chunk-mode",
        {},
        ["online", "expert", "--chunk-mode", "bogus", "--out", "s.jsonl"],
        "chunk mode",
    ),
    ("online-ckpt-dev-zero", {}, ["online", "/dev/zero", "--out", "s.jsonl"], "/dev/zero"),
    ("offline-ckpt-dev-zero", {}, ["offline", "/dev/zero"], "/dev/zero"),
    ("offline-ckpt-fifo", {"c.pt": FIFO}, ["offline", "c.pt"], "c.pt"),
    ("diagnose-dev-zero", {}, ["diagnose", "/dev/zero"], "not a regular file"),
    (
        "diagnose-run-json-dup",
        {
            "run/metrics.jsonl": '{"step": 0, "loss": 1.0}\n',
            "run/run.json": '{"schema": 1, "schema": 2}',
        },
        ["diagnose", "run"],
        "duplicate key",
    ),
    ("sampling-task-twice", {}, ["sampling", "--counts", "a=1,a=2"], "twice"),
    ("sampling-no-name", {}, ["sampling", "--counts", "=1"], "task=count"),
    ("compare-one-file", {"a.jsonl": OK}, ["compare", "a.jsonl"], "two"),
    ("report-by-unknown", {"e.jsonl": OK}, ["report", "e.jsonl", "--by", "nope"], "--by"),
    (
        "report-splits-missing",
        {"e.jsonl": OK},
        ["report", "e.jsonl", "--splits", "unseen"],
        "unseen",
    ),
    ("plan-equal-rates", {}, ["plan", "--p0", "0.5", "--p1", "0.5"], "equal"),
    ("plan-two-modes", {}, ["plan", "--p0", "0.5", "--p1", "0.7", "--trials", "10"], "exactly one"),
    ("wilson-k-over-n", {}, ["wilson", "-k", "3", "-n", "2"], "cannot exceed"),
    ("wilson-method", {}, ["wilson", "-k", "1", "-n", "2", "-m", "wald"], "method"),
    # -- output paths -----------------------------------------------------------------------
    (
        "out-existing-file",
        {"e.jsonl": OK},
        ["report", "e.jsonl", "--out", "e.jsonl"],
        "not a folder",
    ),
    (
        "out-dev-null",
        {"e.jsonl": OK},
        ["report", "e.jsonl", "--out", "/dev/null"],
        "--out /dev/null",
    ),
    (
        "out-dev-full",
        {"e.jsonl": OK},
        ["report", "e.jsonl", "--out", "/dev/full"],
        "--out /dev/full",
    ),
    (
        "out-under-file",
        {"e.jsonl": OK},
        ["report", "e.jsonl", "--out", "e.jsonl/sub"],
        "--out e.jsonl/sub",
    ),
    (
        "out-symlink-loop",
        {"e.jsonl": OK, "loop": LOOP},
        ["report", "e.jsonl", "--out", "loop"],
        "symbolic links",
    ),
    (
        "out-dangling-link",
        {"e.jsonl": OK, "gone": DANGLING},
        ["report", "e.jsonl", "--out", "gone"],
        "broken link",
    ),
    (
        "out-unwritable",
        {"e.jsonl": OK},
        ["report", "e.jsonl", "--out", "/proc/vla-eval-fuzz"],
        "--out /proc",
    ),
    (
        "out-unwritable-existing",
        {"e.jsonl": OK},
        ["report", "e.jsonl", "--out", "/proc/self"],
        "cannot write",
    ),
    (
        "compare-out-file",
        {"a.jsonl": OK, "b.jsonl": OK.replace('"pick"', '"place"')},
        ["compare", "a.jsonl", "b.jsonl", "--out", "a.jsonl"],
        "not a folder",
    ),
    (
        "online-out-dev-null",
        {},
        ["online", "expert", "--out", "/dev/null", "--trials", "1"],
        "--out /dev/null",
    ),
    (
        "online-out-folder",
        {"d": DIR},
        ["online", "expert", "--out", "d", "--trials", "1"],
        "is a folder",
    ),
    (
        "online-out-under-file",
        {"f": "x"},
        ["online", "expert", "--out", "f/e.jsonl", "--trials", "1"],
        "--out f/e.jsonl",
    ),
    (
        "online-out-loop-resume",
        {"loop": LOOP},
        ["online", "expert", "--out", "loop", "--resume", "--trials", "1"],
        "symbolic links",
    ),
    (
        "offline-out-dev-full",
        {},
        ["offline", "--predictions", "p.npz", "--out", "/dev/full"],
        "--out /dev/full",
    ),
    # -- metrics for diagnose -------------------------------------------------------------------
    (
        "diagnose-negative-step",
        {"m.jsonl": '{"step": -1, "loss": 1.0}\n'},
        ["diagnose", "m.jsonl"],
        ">= 0",
    ),
    (
        "diagnose-decreasing",
        {"m.jsonl": '{"step": 5, "loss": 1.0}\n{"step": 3, "loss": 1.0}\n'},
        ["diagnose", "m.jsonl"],
        "goes back",
    ),
    (
        "diagnose-duplicated",
        {"m.jsonl": '{"step": 5, "loss": 1.0}\n{"step": 5, "loss": 1.0}\n'},
        ["diagnose", "m.jsonl"],
        "repeats",
    ),
    (
        "diagnose-dup-key",
        {"m.jsonl": '{"step": 1, "step": 2, "loss": 1.0}\n'},
        ["diagnose", "m.jsonl"],
        "duplicate key",
    ),
    (
        "diagnose-deep",
        {"m.jsonl": '{"step": 1, "x": ' + DEEP + "}\n"},
        ["diagnose", "m.jsonl"],
        "m.jsonl:1: nested deeper",
    ),
    ("diagnose-fifo", {"m.jsonl": FIFO}, ["diagnose", "m.jsonl"], "not a regular file"),
    (
        "diagnose-not-utf8",
        {"m.jsonl": b'{"step": 1, "loss": 1.0}\n\xff\n'},
        ["diagnose", "m.jsonl"],
        "UTF-8",
    ),
    # -- protocols ------------------------------------------------------------------------------
    (
        "toml-not-utf8",
        {"p.toml": b'name = "\xff"\n[train]\n'},
        ["run", "p.toml", "--dry-run"],
        "UTF-8",
    ),
    ("toml-symlink-loop", {"p.toml": LOOP}, ["run", "p.toml", "--dry-run"], "p.toml"),
    ("toml-fifo", {"p.toml": FIFO}, ["run", "p.toml", "--dry-run"], "not a regular file"),
    (
        "toml-base-dev-zero",
        {"p.toml": 'base = "/dev/zero"\n[train]\n'},
        ["run", "p.toml", "--dry-run"],
        "/dev/zero",
    ),
    (
        "toml-base-fifo",
        {"p.toml": 'base = "f.toml"\n[train]\n', "f.toml": FIFO},
        ["run", "p.toml", "--dry-run"],
        "not a regular file",
    ),
    (
        "toml-base-cycle",
        {"p.toml": 'base = "q.toml"\n[train]\n', "q.toml": 'base = "p.toml"\n[train]\n'},
        ["run", "p.toml", "--dry-run"],
        "cycle",
    ),
    (
        "toml-base-loop-link",
        {"p.toml": 'base = "loop"\n[train]\n', "loop": LOOP},
        ["run", "p.toml", "--dry-run"],
        "loop",
    ),
    (
        "toml-deep",
        {"p.toml": "x = " + "[" * 50_000 + "]" * 50_000 + "\n[train]\n"},
        ["run", "p.toml", "--dry-run"],
        "p.toml",
    ),
    (
        "toml-bogus-split",
        {"p.toml": '[train]\nsteps = 10\n[evaluate]\nsplits = ["bogus"]\n'},
        ["run", "p.toml", "--dry-run"],
        "evaluate.splits",
    ),
    (
        "toml-empty-splits",
        {"p.toml": "[train]\n[evaluate]\nsplits = []\n"},
        ["run", "p.toml", "--dry-run"],
        "evaluate.splits",
    ),
    (
        "toml-lr-overflow",
        {"p.toml": "[train.recipe]\nlrs = [1e39, 1e-3, 1e-3]\n"},
        ["run", "p.toml", "--dry-run"],
        "recipe.lrs[0]",
    ),
    (
        "toml-lr-inf",
        {"p.toml": '[train.recipe]\nkind = "one_stage"\nlr = inf\n'},
        ["run", "p.toml", "--dry-run"],
        "recipe.lr",
    ),
    (
        "toml-seed-negative",
        {"p.toml": "[train]\nseed = -1\n"},
        ["run", "p.toml", "--dry-run"],
        "seed",
    ),
    (
        "toml-seed-2^63",
        {"p.toml": f"[train]\nseed = {2**63}\n"},
        ["run", "p.toml", "--dry-run"],
        "p.toml",
    ),
    (
        "toml-trials-huge",
        {"p.toml": "[train]\n[evaluate]\ntrials = 10000000000\n"},
        ["run", "p.toml", "--dry-run"],
        "evaluate.trials",
    ),
    (
        "toml-weight-decay",
        {"p.toml": "[train.recipe]\nweight_decay = nan\n"},
        ["run", "p.toml", "--dry-run"],
        "weight_decay",
    ),
    ("toml-unknown-key", {"p.toml": "[train]\nstepz = 10\n"}, ["train", "p.toml"], "stepz"),
    (
        "train-out-dev-null",
        {"p.toml": "[train]\nsteps = 1\n"},
        ["train", "p.toml", "--out", "/dev/null"],
        "--out /dev/null",
    ),
    (
        "run-out-under-file",
        {"p.toml": "[train]\nsteps = 1\n", "f": "x"},
        ["run", "p.toml", "--out", "f/x"],
        "--out f/x",
    ),
    ("quickstart-out-file", {"f": "x"}, ["quickstart", "--out", "f"], "not a folder"),
    # -- predictions files ----------------------------------------------------------------------
    *[
        (f"predictions-{key}", {"p.npz": data}, ["offline", "--predictions", "p.npz"], needle)
        for key, (data, needle) in PREDICTIONS.items()
        if data is not None
    ],
    (
        "predictions-single-npy",
        {"p.npz": "NPY"},
        ["offline", "--predictions", "p.npz"],
        "single .npy",
    ),
    (
        "predictions-fifo",
        {"p.npz": FIFO},
        ["offline", "--predictions", "p.npz"],
        "not a regular file",
    ),
]


def _materialise(folder: Path, files: dict[str, object]) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is FIFO:
            os.mkfifo(path)
        elif content is LOOP:
            path.symlink_to(path.name)
        elif content is DANGLING:
            path.symlink_to("does-not-exist")
        elif content is DIR:
            path.mkdir()
        elif content == "NPY":
            np.save(path.with_suffix(".tmp.npy"), np.zeros(3))
            path.with_suffix(".tmp.npy").rename(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(str(content), encoding="utf-8", errors="surrogatepass")


@pytest.mark.parametrize(
    ("files", "argv", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_refused_with_one_line(tmp_path, monkeypatch, run_inprocess, files, argv, needle):
    monkeypatch.chdir(tmp_path)
    _materialise(tmp_path, files)
    check_refused(run_inprocess(*argv), needle)


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
