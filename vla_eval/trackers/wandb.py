"""Weights & Biases: offline by default, so no account and no network are needed.

A run is written under ``<run dir>/wandb/offline-run-*`` (``wandb sync`` uploads it
later). Giving a server URL (``--tracker-uri https://api.wandb.ai``, or a W&B server of
your own) logs online instead, with the login W&B already has; the server is checked
with a short connection attempt first. Scalars, findings (the scalar, a text entry
``diagnose/<symptom>/text`` and the run tag ``diagnose:<symptom>``), videos
(``wandb.Video``) and files (a W&B artifact) go through the run object, never the
global ``wandb.log``. Imports `wandb` only when a tracker is opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla_eval.errors import UsageError
from vla_eval.trackers.base import Status, Tracker, Video
from vla_eval.trackers.reach import check_reachable
from vla_eval.trackers.video import mp4_file

INSTALL = "pip install 'vla-eval[trackers]' (or pip install wandb)"
DEFAULT_PROJECT = "vla-eval"


class WandbTracker(Tracker):
    """A W&B run (`wandb.init`'s result); `scratch` holds videos encoded on the way."""

    name = "wandb"

    @property
    def run_id(self) -> str:
        """The W&B run's id (a resumed training run continues it)."""
        return str(self.run.id)

    def __init__(self, run: Any, location: str, scratch: Path) -> None:
        super().__init__(location)
        self.run, self._scratch = run, scratch

    def _scalars(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def _text(self, tag: str, text: str, step: int) -> None:
        self.run.log({tag: text}, step=step)

    def _params(self, params: dict[str, Any]) -> None:
        self.run.config.update(params, allow_val_change=True)

    def _finding(self, finding: Any, level: int, step: int) -> None:
        super()._finding(finding, level, step)
        tag = f"diagnose:{finding.symptom}"
        if tag not in (self.run.tags or ()):
            self.run.tags = (*(self.run.tags or ()), tag)

    def _video(self, video: Video, tag: str, step: int, fps: int) -> None:
        import wandb

        path = mp4_file(video, fps, self._scratch, f"{tag.replace('/', '_')}_{step:06d}")
        self.run.log({tag: wandb.Video(str(path), format="mp4")}, step=step)

    def _file(self, path: Path, folder: str) -> None:
        import wandb

        artifact = wandb.Artifact(folder or "files", type="file")
        artifact.add_file(str(path))
        self.run.log_artifact(artifact)

    def _close(self, status: Status) -> None:
        self.run.finish(exit_code=0 if status == "finished" else 1)


def open_wandb(
    run_dir: Path,
    uri: str | None,
    project: str | None,
    run_name: str,
    config: dict[str, Any],
    resume_id: str | None = None,
) -> WandbTracker:
    """A new W&B run: offline under `run_dir`, or online on the server at `uri`.

    Raises:
        UsageError: wandb is not installed, the server cannot be reached, or W&B refuses
            to start the run (no login for an online run).
    """
    try:
        import wandb
    except ImportError:
        raise UsageError(f"--tracker wandb needs Weights & Biases: {INSTALL}") from None
    if uri is not None:
        check_reachable(uri, "W&B server")
    run_dir.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {"silent": True, "console": "off", "x_disable_stats": True}
    if uri is not None:
        settings["base_url"] = uri
    try:
        run = wandb.init(
            project=project or DEFAULT_PROJECT,
            name=run_name,
            dir=str(run_dir),
            config=config,
            mode="online" if uri else "offline",
            settings=wandb.Settings(**settings),
            reinit="create_new",
            # a resumed training run continues its W&B run (steps logged again are dropped)
            **({"id": resume_id, "resume": "allow"} if resume_id else {}),
        )
    except Exception as exc:  # any refusal to start is the user's setup
        reason = " ".join(str(exc).split())[:300]
        raise UsageError(f"W&B could not start a run ({reason})") from None
    location = uri or str(Path(run.dir).parent)
    return WandbTracker(run, location, run_dir / "wandb" / "videos")
