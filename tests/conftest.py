"""Session-wide fixtures: one tiny trained run shared by every test that needs "a model".

Training even the smoke protocol costs seconds, so it happens once per session:
`smoke_run` is a run directory trained from ``protocols/smoke.toml`` (24 steps, all
three stages, checkpoints at steps 1, 8, 16, 20 and 24, metrics.jsonl, run.json,
findings.json) and `smoke_checkpoint` its final checkpoint. Tests must treat both as
read-only: a test that has to change files copies the run into its own ``tmp_path``
first. Tests that need a different configuration train their own run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SMOKE_PROTOCOL = Path(__file__).parents[1] / "protocols" / "smoke.toml"


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory trained once per session from the smoke protocol (read-only)."""
    from vla_eval.protocol import load_protocol
    from vla_eval.trainer.train import train

    out = tmp_path_factory.mktemp("smoke") / "run"
    train(load_protocol(SMOKE_PROTOCOL).train, out_dir=out, progress=False)
    return out


@pytest.fixture(scope="session")
def smoke_checkpoint(smoke_run: Path) -> Path:
    """The final checkpoint (step 24) of `smoke_run` (read-only)."""
    return smoke_run / "checkpoints" / "step_000024.pt"
