"""Frames of replayed episodes into video files: the capturing environment and the writers.

`FrameCapture` wraps an environment for a replay only: after each reset and step it
takes the batch's frames (``env.render()`` (N, H, W, 3) uint8 when the environment
has it, else ``obs["image"]``) and appends each episode's frame to that episode's
writer until the episode finishes, so an episode of S steps gives S + 1 frames (the
first observation, then one per step). A normal run never goes through it. Writers
are MP4 (H.264 through imageio's ffmpeg plugin) or, when imageio-ffmpeg is missing,
GIF; each file is written under a temporary name and renamed when complete. numpy;
imageio is imported when a writer is opened.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vla_eval.envs.base import Env, Obs
from vla_eval.errors import UsageError
from vla_eval.results import TMP_MARKER, fsync_dir

#: Frames smaller than this (pixels, shorter side) are enlarged, nearest neighbour.
MIN_SIDE = 256
#: Frames per second when the environment does not say (``render_fps``).
DEFAULT_FPS = 10
_MACRO_BLOCK = 16  # H.264 wants sides divisible by 16


def video_format() -> str:
    """``mp4`` when imageio and its ffmpeg plugin are installed, ``gif`` with imageio alone."""
    try:
        import imageio  # noqa: F401
    except ImportError:
        raise UsageError(
            "--videos needs imageio: pip install 'vla-eval[gym]' (imageio and imageio-ffmpeg)"
        ) from None
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return "gif"
    return "mp4"


def upscale(frame: np.ndarray, min_side: int = MIN_SIDE) -> np.ndarray:
    """A frame (H, W, 3) enlarged by a whole factor (nearest) so its shorter side >= min_side.

    >>> upscale(np.zeros((64, 80, 3), np.uint8)).shape
    (256, 320, 3)
    """
    factor = -(-min_side // min(frame.shape[:2]))
    if factor <= 1:
        return frame
    return np.repeat(np.repeat(frame, factor, axis=0), factor, axis=1)


def _pad_to_blocks(frame: np.ndarray) -> np.ndarray:
    """Pad bottom and right with black to multiples of 16 (what H.264 encoders need)."""
    h, w = frame.shape[:2]
    ph, pw = -h % _MACRO_BLOCK, -w % _MACRO_BLOCK
    if not (ph or pw):
        return frame
    return np.pad(frame, ((0, ph), (0, pw), (0, 0)))


class VideoWriter:
    """One episode's video, written to a temporary file and renamed on `finish`."""

    def __init__(self, path: Path, fmt: str, fps: float) -> None:
        import imageio.v2 as iio

        self.path, self.fmt, self.frames = path, fmt, 0
        self._tmp = path.parent / f".{path.name}{TMP_MARKER}{os.getpid()}.{secrets.token_hex(4)}"
        self._tmp = self._tmp.with_name(f"{self._tmp.name}.{fmt}")  # imageio reads the suffix
        if fmt == "mp4":
            self._writer = iio.get_writer(
                self._tmp,
                format="FFMPEG",
                mode="I",
                fps=fps,
                codec="libx264",
                pixelformat="yuv420p",
                macro_block_size=_MACRO_BLOCK,
                ffmpeg_log_level="error",
            )
        else:
            self._writer = iio.get_writer(self._tmp, mode="I", duration=1000 / fps, loop=0)

    def append(self, frame: np.ndarray) -> None:
        frame = upscale(np.ascontiguousarray(frame, dtype=np.uint8))
        self._writer.append_data(_pad_to_blocks(frame) if self.fmt == "mp4" else frame)
        self.frames += 1

    def finish(self) -> None:
        """Close the file and move it to its name."""
        self._writer.close()
        os.replace(self._tmp, self.path)
        fsync_dir(self.path.parent)

    def abandon(self) -> None:
        """Close and remove the temporary file (the replay failed)."""
        try:
            self._writer.close()
        finally:
            self._tmp.unlink(missing_ok=True)


def frames_of(env: Env, obs: Obs) -> np.ndarray:
    """The batch's frames (N, H, W, 3) uint8: ``env.render()`` when it has one, else the image."""
    render = getattr(env, "render", None)
    frames = render() if callable(render) else obs.get("image")
    if frames is None:
        raise UsageError(
            f"--videos: the {env.name} environment has neither render() nor image observations"
        )
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise UsageError(
            f"--videos: {env.name} frames must be (N, H, W, 3) uint8, got {frames.shape} "
            f"{frames.dtype}"
        )
    return frames


class FrameCapture:
    """An environment that records its frames into one writer per episode (for replays).

    Args:
        env: the environment replayed.
        open_writer: batch position -> the writer of the episode starting there.
    """

    def __init__(self, env: Env, open_writer: Callable[[int], VideoWriter]) -> None:
        self.env = env
        self.name, self.version, self.action_dim = env.name, env.version, env.action_dim
        self._open = open_writer
        self.writers: list[VideoWriter | None] = []

    @property
    def tasks(self) -> Any:
        return self.env.tasks

    def __getattr__(self, name: str) -> Any:  # anything else a policy may read
        if name == "env":  # not set yet (a copy under construction): never recurse
            raise AttributeError(name)
        return getattr(self.env, name)

    def reset(self, seeds: Sequence[int], tasks: Any) -> Obs:
        obs = self.env.reset(seeds, tasks)
        self.writers = [self._open(i) for i in range(len(seeds))]
        self._capture(obs)
        return obs

    def step(self, actions: Any) -> tuple[Obs, Any, Any, dict[str, Any]]:
        out = self.env.step(actions)
        self._capture(out[0])
        return out

    def finish(self, position: int) -> VideoWriter:
        """The episode at ``position`` ended: close its file; no more frames go to it."""
        writer = self.writers[position]
        assert writer is not None
        writer.finish()
        self.writers[position] = None
        return writer

    def abandon(self) -> None:
        """Remove the files of episodes still being recorded."""
        for writer in self.writers:
            if writer is not None:
                writer.abandon()
        self.writers = []

    def _capture(self, obs: Obs) -> None:
        frames = frames_of(self.env, obs)
        for i, writer in enumerate(self.writers):
            if writer is not None:
                writer.append(frames[i])
