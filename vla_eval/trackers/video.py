"""Rollout videos in the forms trackers take: frames, an animated GIF, an MP4 file.

A video reaches a tracker as a file (MP4, GIF: anything imageio reads) or as uint8
frames (T, H, W, 3). TensorBoard shows an animated GIF in its image dashboard (encoded
here with Pillow, so no moviepy is needed); MLflow keeps a file; W&B shows an MP4.
numpy, imageio and Pillow are imported inside the functions that use them.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from vla_eval.errors import UsageError

MAX_FPS = 240


def is_file(video: Any) -> bool:
    """Whether `video` names a file rather than holding frames."""
    return isinstance(video, (str, os.PathLike))


def frames(video: Any) -> Any:
    """The video as uint8 frames (T, H, W, 3), read from its file when it is one.

    Raises:
        UsageError: the file cannot be read as a video, or the frames have another shape.
    """
    import numpy as np

    if is_file(video):
        import imageio.v2 as iio

        try:
            video = iio.mimread(os.fspath(video), memtest=False)
        except (OSError, ValueError, RuntimeError) as exc:
            raise UsageError(f"{video}: cannot read it as a video ({exc})") from None
    array = np.asarray(video)
    if array.ndim == 4 and array.shape[-1] == 4:
        array = array[..., :3]  # RGBA frames: drop the alpha channel
    if array.ndim != 4 or array.shape[-1] != 3 or not len(array):
        raise UsageError(f"a video must be frames (T, H, W, 3), got shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return array


def gif_bytes(video: Any, fps: int) -> tuple[bytes, int, int]:
    """An animated GIF of the video, with its height and width."""
    from PIL import Image

    array = frames(video)
    images = [Image.fromarray(f) for f in array]
    buffer = io.BytesIO()
    duration = round(1000 / max(1, min(fps, MAX_FPS)))
    images[0].save(
        buffer, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0
    )
    return buffer.getvalue(), int(array.shape[1]), int(array.shape[2])


def mp4_file(video: Any, fps: int, folder: Path, name: str) -> Path:
    """The video as an MP4 file: the file itself when it is one, else written to `folder`."""
    if is_file(video) and Path(video).suffix.lower() == ".mp4":
        return Path(video)
    import imageio.v2 as iio

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.mp4"
    iio.mimwrite(path, list(frames(video)), fps=max(1, min(fps, MAX_FPS)), macro_block_size=1)
    return path
