"""TensorBoard: event files read back with TensorBoard's own reader (`EventAccumulator`)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vla_eval.diagnose.findings import Finding
from vla_eval.trackers import open_tracker


def read(logdir) -> EventAccumulator:
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0, "images": 0})
    acc.Reload()
    return acc


def scalars(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_scalars_text_and_findings_come_back_at_their_steps(tmp_path) -> None:
    rng = np.random.default_rng(0)
    losses = rng.uniform(0.1, 5.0, size=7)
    finding = Finding("gradient_explosion", 4, "critical", "loss is nan.", "lower the LR.")
    with open_tracker("tensorboard", tmp_path, config={"lr": 0.1, "model": {"width": 32}}) as t:
        for step, loss in enumerate(losses):
            t.log_scalars({"train/loss": loss, "train/lr": 1e-3 * (step + 1)}, step)
        t.log_finding(finding)
        t.log_text("notes", "hello *world*", 6)
    acc = read(tmp_path / "tensorboard")
    # TensorBoard stores float32: compare with the logged values rounded the same way
    assert scalars(acc, "train/loss") == [(s, np.float32(v)) for s, v in enumerate(losses)]
    assert scalars(acc, "train/lr") == [(s, np.float32(1e-3 * (s + 1))) for s in range(7)]
    assert scalars(acc, "diagnose/gradient_explosion") == [(4, 2.0)]  # critical = 2
    [text] = acc.Tensors("diagnose/gradient_explosion/text")
    assert text.step == 4
    assert text.tensor_proto.string_val[0].decode() == (
        "**critical** gradient_explosion at step 4: loss is nan.\n\nFix: lower the LR."
    )
    [note] = acc.Tensors("notes")
    assert (note.step, note.tensor_proto.string_val[0]) == (6, b"hello *world*")
    [config] = acc.Tensors("config")
    assert b'"width": 32' in config.tensor_proto.string_val[0]


def test_a_resumed_run_replaces_the_steps_logged_after_its_checkpoint(tmp_path) -> None:
    with open_tracker("tensorboard", tmp_path) as t:
        for step in range(10):
            t.log_scalars({"loss": float(step)}, step)
    with open_tracker("tensorboard", tmp_path, resume_step=5) as t:  # resumed from step 5
        for step in range(5, 8):
            t.log_scalars({"loss": 100.0 + step}, step)
    got = scalars(read(tmp_path / "tensorboard"), "loss")
    assert got == [(s, float(s)) for s in range(5)] + [(s, 100.0 + s) for s in range(5, 8)]


def test_a_video_is_an_animated_image(tmp_path) -> None:
    frames = np.zeros((5, 16, 24, 3), np.uint8)
    for i in range(5):
        frames[i, :, i * 4 : i * 4 + 4] = 255  # a bar moving right
    with open_tracker("tensorboard", tmp_path) as t:
        t.log_video(frames, "rollout/pick", step=3, fps=5)
    [event] = read(tmp_path / "tensorboard").Images("rollout/pick")
    assert (event.step, event.height, event.width) == (3, 16, 24)
    gif = Image.open(io.BytesIO(event.encoded_image_string))
    assert gif.format == "GIF" and gif.n_frames == 5
    gif.seek(2)
    assert np.array_equal(np.asarray(gif.convert("RGB")), frames[2])


def test_an_unwritable_log_folder_is_refused(tmp_path) -> None:
    from vla_eval.errors import UsageError

    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        open_tracker("tensorboard", tmp_path, uri=str(tmp_path / "file"))
