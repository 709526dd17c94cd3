"""TensorBoard: event files written with TensorBoard's own writer, no torch needed.

Scalars are ``simple_value`` summaries, text goes to the text dashboard (Markdown), a
video is an animated GIF in the image dashboard, and the run's configuration is one
text entry. The log directory is ``<run dir>/tensorboard`` unless a folder is given.
A resumed run first writes TensorBoard's restart marker at the step it resumes from,
so the steps logged twice (after the last checkpoint, before the interruption) are
dropped by every reader. Imports `tensorboard` only inside `open_tensorboard`'s callees.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from vla_eval.errors import UsageError
from vla_eval.trackers.base import Status, Tracker, Video
from vla_eval.trackers.video import gif_bytes, is_file

INSTALL = "pip install 'vla-eval[trackers]' (or pip install tensorboard)"


class TensorBoardTracker(Tracker):
    """Event files in one log directory.

    Args:
        logdir: the folder (created if missing).
        resume_step: the step a resumed run starts from (None for a fresh run).
    """

    name = "tensorboard"

    def __init__(self, logdir: Path, resume_step: int | None = None) -> None:
        super().__init__(str(logdir))
        try:
            import tensorboard  # noqa: F401 - the package itself first: it is what is missing
            from tensorboard.compat.proto import event_pb2, summary_pb2
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError:
            raise UsageError(f"--tracker tensorboard needs TensorBoard: {INSTALL}") from None
        self._event, self._summary = event_pb2, summary_pb2
        try:
            self._writer = EventFileWriter(str(logdir), flush_secs=10)
        except OSError as exc:
            raise UsageError(f"tensorboard log directory {logdir}: cannot write ({exc})") from None
        if resume_step is not None:
            restart = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            self._write(step=resume_step, session_log=restart)

    def _write(self, **fields: Any) -> None:
        self._writer.add_event(self._event.Event(wall_time=time.time(), **fields))

    def _scalars(self, values: dict[str, float], step: int) -> None:
        Value = self._summary.Summary.Value
        entries = [Value(tag=k, simple_value=v) for k, v in values.items()]
        self._write(step=step, summary=self._summary.Summary(value=entries))

    def _text(self, tag: str, text: str, step: int) -> None:
        from tensorboard.plugins.text.summary_v2 import text_pb

        self._write(step=step, summary=text_pb(tag, text))

    def _params(self, params: dict[str, Any]) -> None:
        shown = json.dumps(params, indent=2, sort_keys=True, default=str)
        self._text("config", "```\n" + shown + "\n```", 0)

    def _video(self, video: Video, tag: str, step: int, fps: int) -> None:
        data, height, width = gif_bytes(video, fps)
        image = self._summary.Summary.Image(
            height=height, width=width, colorspace=3, encoded_image_string=data
        )
        value = self._summary.Summary.Value(tag=tag, image=image)
        self._write(step=step, summary=self._summary.Summary(value=[value]))
        if is_file(video):
            self._text(f"{tag}/file", f"`{video}`", step)

    def _file(self, path: Path, folder: str) -> None:
        where = f"{folder}/{path.name}" if folder else path.name
        self._text(f"files/{where}", f"`{path}`", 0)  # TensorBoard keeps no files: name it

    def _close(self, status: Status) -> None:
        self._writer.close()


def open_tensorboard(
    run_dir: Path, uri: str | None, resume_step: int | None = None
) -> TensorBoardTracker:
    """A TensorBoard tracker writing to `uri` (a folder) or ``<run_dir>/tensorboard``."""
    logdir = Path(uri) if uri else run_dir / "tensorboard"
    if logdir.exists() and not logdir.is_dir():
        raise UsageError(f"tensorboard log directory {logdir}: exists and is not a folder")
    return TensorBoardTracker(logdir, resume_step)
