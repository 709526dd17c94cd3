"""`vla-eval quickstart` end to end on the smallest protocol: every artefact is written.

The quickstart's training is the session's smoke run (the same protocol), copied into
the output folder where the quickstart finds it finished; what is tested here is
everything after training: offline and online evaluation, Diagnose, report and figures,
and the resume.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vla_eval.cli import main

SMOKE = Path(__file__).parents[1] / "protocols" / "smoke.toml"


@pytest.mark.slow
def test_quickstart_writes_report_and_resumes(tmp_path, capsys, smoke_run) -> None:
    out = tmp_path / "qs"
    shutil.copytree(smoke_run, out / "train")
    assert main(["quickstart", "--protocol", str(SMOKE), "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["schema"] == "vla-eval/quickstart/1"
    assert report["train"]["steps"] == 24
    assert set(report["offline"]["per_split"]) == {"seen", "unseen"}
    splits = {s["split"]: s["pooled"]["trials"] for s in report["online"]["splits"]}
    assert splits == {"seen": 8, "unseen": 8}  # 2 trials x 4 tasks per split
    for png in ("training.png", "success.png", "dimension_accuracy.png", "open_loop.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "## Offline" in md and "## Online" in md and "## Diagnose" in md
    printed = capsys.readouterr().out
    assert printed.startswith(md)  # the command prints report.md
    assert f"wrote {out}/report.html" in printed  # and names the one page to open
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(report["figures"]) >= 4
    episodes = (out / "episodes.jsonl").read_text()
    # Rerunning reuses the finished training run and the finished rollouts.
    assert main(["quickstart", "--protocol", str(SMOKE), "--out", str(out), "--no-progress"]) == 0
    assert (out / "episodes.jsonl").read_text() == episodes
