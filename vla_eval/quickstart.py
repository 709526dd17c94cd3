"""`vla-eval quickstart`: the whole toolkit end to end on the built-in world.

Trains a small TinyVLA with the three-stage recipe (protocols/quickstart.toml),
scores it offline on held-out demonstrations of both splits, rolls it out online on
both splits, gathers the Diagnose findings, and writes report.md, report.json and
PNG figures into one folder. Every step is resumable: rerunning the command picks up
the training run and the rollouts where they stopped. Orchestration only: it composes
the experiment's one-run pipeline, the success report and Diagnose (each imported
inside the function that uses it), and only the command line imports it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from vla_eval.errors import UsageError

SCHEMA = "vla-eval/quickstart/1"


def default_protocol() -> Path:
    """protocols/quickstart.toml of this source tree."""
    path = Path(__file__).resolve().parents[1] / "protocols" / "quickstart.toml"
    if not path.is_file():
        raise UsageError(
            "protocols/quickstart.toml was not found next to the package; run from a source "
            "checkout or pass --protocol"
        )
    return path


def run_quickstart(
    out: str | Path = "quickstart", protocol_path: str | Path | None = None, progress: bool = True
) -> dict[str, Any]:
    """Train, evaluate offline and online, diagnose; write the report. Returns report.json.

    The output folder is locked while the demo writes it (a second one is refused).
    """
    from vla_eval.locking import output_lock

    with output_lock(out, "quickstart folder", directory=True):
        return _run_locked(out, protocol_path, progress)


def _run_locked(
    out: str | Path, protocol_path: str | Path | None, progress: bool
) -> dict[str, Any]:
    from vla_eval import report as rep
    from vla_eval.episodes import load_episodes
    from vla_eval.experiment.run import train_and_evaluate
    from vla_eval.protocol import load_protocol
    from vla_eval.results import provenance, write_json, write_text

    started = time.time()
    out = Path(out)
    protocol = load_protocol(protocol_path or default_protocol())

    say = _say if progress else (lambda *_: None)
    say(
        f"training {protocol.name} ({protocol.train.steps} steps), then offline and online "
        f"evaluation ({protocol.evaluate.trials} rollouts per task and split) -> {out}"
    )
    done = train_and_evaluate(
        protocol.train,
        protocol.evaluate,
        out,
        name=protocol.name,
        trials=protocol.evaluate.trials,
        progress=progress,
        record_actions=True,  # for the jitter check of the rollouts
        offline_plots=True,
    )
    metrics = done["offline"]
    offline = {
        "per_split": metrics["per_split"],
        "per_dim": metrics["per_dim"],
        "web": metrics.get("web"),
        "dispersion_ratio": metrics["dispersion_ratio"],
    }
    success = rep.build_report(load_episodes([done["episodes"]]), splits=protocol.evaluate.splits)
    rep.plot_report(success, out / "success.png")
    findings = done["findings"] + _rollout_findings(Path(done["episodes"]))
    _training_plot(out / "train", out / "training.png", f"Training run: {protocol.name}")
    run_info = done["run"]

    result = {
        "schema": SCHEMA,
        "protocol": protocol.name,
        "train": {
            k: run_info[k]
            for k in ("steps", "final_loss", "seconds", "robot_samples", "task_counts", "filter")
        },
        "offline": offline,
        "online": success,
        "findings": findings,
        "figures": sorted(p.name for p in out.glob("*.png")),
        "seconds": time.time() - started,
        "provenance": provenance(seeds={"train": protocol.train.seed, "bootstrap": 0}),
    }
    write_json(out / "report.json", result)
    write_text(out / "report.md", format_markdown(result))
    write_quickstart_html(result, out)
    return result


#: Captions of the quickstart's figures in report.html.
FIGURE_CAPTIONS = {
    "training.png": "Training curves: losses (web VQA on its own axis), per-task loss, "
    "held-out loss, learning rate and gradient norm; shading marks the training stages.",
    "dimension_accuracy.png": "Held-out bin accuracy per action dimension with 95% Wilson "
    "intervals.",
    "open_loop.png": "Predicted against demonstrated actions on held-out episodes.",
    "success.png": "Online success per task and split with 95% Wilson intervals; diamonds: "
    "pooled rate and mean of task rates.",
}


def _figure_rank(name: str) -> tuple[int, str]:
    """Figures in the order of the story: training, offline, online; others after."""
    order = list(FIGURE_CAPTIONS)
    return (order.index(name) if name in order else len(order), name)


def write_quickstart_html(result: dict[str, Any], out: Path) -> Path:
    """report.html: the quickstart's one page (tables, figures, findings, provenance)."""
    from vla_eval.report.html import (
        Section,
        figures_section,
        findings_section,
        markdown_html,
        provenance_section,
        report_sections,
        videos_section,
        write_html,
    )

    summary, offline_md = _summary_lines(result), _offline_lines(result)
    return write_html(
        out / "report.html",
        f"vla-eval quickstart: {result['protocol']}",
        Section("Summary", markdown_html("\n".join(summary))),
        Section("Offline: held-out demonstrations", markdown_html("\n".join(offline_md))),
        *report_sections(result["online"]),
        findings_section(result["findings"]),
        figures_section(
            sorted((out / f for f in result["figures"]), key=lambda p: _figure_rank(p.name)),
            FIGURE_CAPTIONS,
        ),
        videos_section(sorted(out.glob("videos/*.mp4")), out),
        provenance_section(result["provenance"], {"protocol": result["protocol"]}),
    )


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _rollout_findings(episodes: Path) -> list[dict[str, Any]]:
    """Action-jitter findings over the executed rollout actions."""
    from vla_eval.diagnose.offline import diagnose_path

    result = diagnose_path(episodes)
    return [f if isinstance(f, dict) else f.to_dict() for f in result.get("findings", [])]


def _training_plot(run_dir: Path, path: Path, title: str) -> None:
    from vla_eval import plots

    plots.training_curves_plot(run_dir / "metrics.jsonl", path, title=title)


def _summary_lines(result: dict[str, Any]) -> list[str]:
    t = result["train"]
    return [
        f"Trained {t['steps']} steps on {t['robot_samples']} demonstration steps in "
        f"{t['seconds']:.0f} s (final training loss {t['final_loss']:.3f}); the whole "
        f"quickstart took {result['seconds']:.0f} s."
    ]


def _offline_lines(result: dict[str, Any]) -> list[str]:
    """The held-out table (Markdown): loss, accuracy, within 2 bins and L1 per split."""
    lines = [
        "| split | action loss | bin accuracy | within 2 bins | L1 |",
        "|---|---:|---:|---:|---:|",
    ]
    for split, m in sorted(result["offline"]["per_split"].items()):
        lines.append(
            f"| {split} | {m['loss']:.3f} | {100 * m['accuracy']:.1f}% | "
            f"{100 * m['within_2']:.1f}% | {m['l1']:.3f} |"
        )
    web = result["offline"].get("web")
    if web:
        lines += [
            "",
            f"Web VQA (language retention): answer accuracy {100 * web['accuracy']:.1f}% over "
            f"{web['count']} questions, loss {web['loss']:.3f}.",
        ]
    return lines


def format_markdown(result: dict[str, Any]) -> str:
    """report.md: what was trained, how it scores offline and online, what went wrong."""
    from vla_eval import report as rep

    lines = [f"# vla-eval quickstart: {result['protocol']}", "", *_summary_lines(result)]
    lines += ["", "## Offline: held-out demonstrations", "", *_offline_lines(result)]
    # The success report's own headings sit one level below this report's sections.
    online_md = "\n".join(
        "##" + line if line.startswith("#") else line
        for line in rep.format_report(result["online"]).splitlines()
    )
    lines += ["", "## Online: rollouts in the tabletop world", "", online_md]
    lines += ["", "## Diagnose", ""]
    if result["findings"]:
        for f in result["findings"]:
            lines.append(
                f"- **{f['symptom']}** (step {f.get('step')}, {f['severity']}): "
                f"{f['message']} Fix: {f['fix']}"
            )
    else:
        lines.append(
            "No detector fired: no sign of mode collapse, forgetting, jitter, "
            "overfitting, gradient explosion or task imbalance."
        )
    lines += ["", "## Figures", ""] + [f"![{p}]({p})" for p in result["figures"]]
    return "\n".join(lines) + "\n"
