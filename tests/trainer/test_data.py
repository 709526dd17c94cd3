"""Tests for demonstration and web datasets: chunking, filtering, augmentation, files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_eval.envs import tabletop as tt
from vla_eval.envs.tabletop import text
from vla_eval.errors import DataError, UsageError
from vla_eval.trainer.data import augment, datasets, files, filtering
from vla_eval.trainer.data import demos as demo_mod


def hand_demos(actions_per_episode, success=None, family=None, closed=None):
    """Demos built by hand from per-episode (T, 7) action lists, with tiny fake images."""
    lengths = [len(a) for a in actions_per_episode]
    e = len(lengths)
    steps = sum(lengths)
    states = np.zeros((steps, 5), np.float32)
    if closed is not None:
        states[:, 2] = np.concatenate(closed)
    return demo_mod.Demos(
        images=np.arange(steps, dtype=np.uint8)[:, None, None, None]
        .repeat(2, 1)
        .repeat(2, 2)
        .repeat(3, 3),
        states=states,
        actions=np.concatenate([np.asarray(a, np.float32) for a in actions_per_episode]),
        episode=np.repeat(np.arange(e), lengths),
        step=np.concatenate([np.arange(n) for n in lengths]),
        family=np.array(family if family is not None else [1] * e),
        split=np.zeros(e, np.int64),
        seed=np.arange(e, dtype=np.int64),
        instruction=np.array(["put the red block in the blue bowl"] * e),
        success=np.array(success if success is not None else [True] * e),
        length=np.array(lengths),
        injected_failed=np.zeros(e, bool),
        injected_idle=np.zeros(e, bool),
        injected_jerky=np.zeros(e, bool),
    )


def act(dx, dy, grip=-1.0, dyaw=0.0):
    return [dx, dy, 0, 0, 0, dyaw, grip]


# --- chunking -----------------------------------------------------------------------------


def test_chunks_by_hand_on_a_tiny_episode():
    # Two episodes: actions are numbered so every chunk entry can be checked by eye.
    a = np.array([[10 + t, 0, 0, 0, 0, 0, g] for t, g in zip(range(3), (-1, 1, 1), strict=True)])
    b = np.array([[20, 0, 0, 0, 0, 0, -1], [21, 0, 0, 0, 0, 0, -1]])
    chunks, mask = datasets.chunk_actions(np.vstack([a, b]), np.array([3, 2]), horizon=3)
    assert chunks.shape == (5, 3, 7) and chunks.dtype == np.float32
    assert chunks[:, :, 0].tolist() == [
        [10, 11, 12],
        [11, 12, 0],  # past the end: hold still
        [12, 0, 0],
        [20, 21, 0],
        [21, 0, 0],
    ]
    # Padded gripper entries repeat the episode's last command (1 for a, -1 for b).
    assert chunks[:, :, 6].tolist() == [
        [-1, 1, 1],
        [1, 1, 1],
        [1, 1, 1],
        [-1, -1, -1],
        [-1, -1, -1],
    ]
    assert mask.tolist() == [
        [True, True, True],
        [True, True, False],
        [True, False, False],
        [True, True, False],
        [True, False, False],
    ]


@settings(max_examples=30, deadline=None)
@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=5), horizon=st.integers(1, 8))
def test_chunks_match_a_plain_loop(lengths, horizon):
    rng = np.random.default_rng(len(lengths) * 10 + horizon)
    actions = rng.uniform(-1, 1, (sum(lengths), 7))
    chunks, mask = datasets.chunk_actions(actions, np.array(lengths), horizon)
    start = 0
    for n in lengths:
        for t in range(n):
            for k in range(horizon):
                if t + k < n:
                    assert mask[start + t, k]
                    np.testing.assert_allclose(
                        chunks[start + t, k], actions[start + t + k], rtol=1e-6
                    )
                else:
                    assert not mask[start + t, k]
                    np.testing.assert_allclose(chunks[start + t, k, :6], 0)
                    assert chunks[start + t, k, 6] == np.float32(actions[start + n - 1, 6])
        start += n


def test_build_dataset_fields():
    demos = hand_demos([[act(1, 0)] * 3, [act(0, 1)] * 2], family=[1, 3])
    ds = datasets.build_dataset(demos, horizon=2)
    assert len(ds) == 5 and ds.horizon == 2
    assert ds.task.tolist() == [1, 1, 1, 3, 3]
    assert ds.episode.tolist() == [0, 0, 0, 1, 1] and ds.step.tolist() == [0, 1, 2, 0, 1]
    expected = text.TextTokenizer().encode("put the red block in the blue bowl")
    np.testing.assert_array_equal(ds.tokens, np.tile(expected, (5, 1)))
    assert ds.task_counts() == {"pick": 0, "place": 3, "stack": 0, "pour": 2}
    np.testing.assert_array_equal(ds.images[:, 0, 0, 0], np.arange(5))


# --- filtering ----------------------------------------------------------------------------------


def test_filter_counts_by_hand():
    clean = [act(1, 0)] * 4 + [act(0, 0, grip=1.0)]
    idle = [act(1, 0)] * 2 + [act(0.05, -0.05)] * 5 + [act(0, 0, grip=1.0)]
    jerky = [act(1, 1), act(1, -1), act(1, 1), act(1, -1), act(0, 0, grip=1.0)]
    too_long = [act(1, 0)] * 31  # place allows 40 steps; 0.75 * 40 = 30
    demos = hand_demos(
        [clean, clean[:1], idle, jerky, too_long, clean],
        success=[True, True, True, True, True, False],
    )
    kept, report = filtering.filter_demos(demos)
    assert report.total == 6 and report.kept == 1
    assert report.dropped == {
        "failed": 1,
        "too_short": 1,
        "too_long": 1,
        "jerky": 1,
        "idle": 1,
    }
    assert kept.num_episodes == 1 and kept.episode.tolist() == [0] * 5
    np.testing.assert_array_equal(kept.actions, np.asarray(clean, np.float32))
    assert report.kept_per_family == {"pick": 0, "place": 1, "stack": 0, "pour": 0}
    assert report.describe() == (
        "kept 1 of 6 demonstrations (dropped: 1 failed, 1 too_short, 1 too_long, 1 jerky, 1 idle)"
    )


def test_gripper_and_tilt_steps_are_not_idle():
    # Standing still while closing, holding or tilting is work, not idling.
    tilt = [act(0, 0, grip=1.0, dyaw=1.0)] * 5
    assert not filtering.is_idle(np.array(tilt), np.ones(5, bool))
    toggles = [act(0, 0, grip=g) for g in (1, -1, 1, -1, 1)]
    closed = np.array([0, 1, 0, 1, 0], bool)
    assert not filtering.is_idle(np.array(toggles), closed)
    still = [act(0, 0, grip=1.0)] * 5
    assert filtering.is_idle(np.array(still), np.ones(5, bool))


def test_filter_catches_injected_defects_in_generated_demos():
    quality = tt.DemoQuality(noise=0.05, idle=0.25, failed=0.2, jerky=0.25)
    demos = demo_mod.collect_demos(
        {f: 60 for f in ("pick", "place", "stack", "pour")}, "seen", quality, seed=3
    )
    kept, report = filtering.filter_demos(demos)
    assert (
        report.dropped["failed"] == int((~demos.success).sum()) == int(demos.injected_failed.sum())
    )
    clean = ~(demos.injected_failed | demos.injected_idle | demos.injected_jerky)
    kept_seeds = set(kept.seed.tolist())
    clean_kept = np.mean([s in kept_seeds for s in demos.seed[clean]])
    assert clean_kept >= 0.97
    jerky = demos.injected_jerky & ~demos.injected_failed
    assert np.mean([s not in kept_seeds for s in demos.seed[jerky]]) >= 0.95
    # An idle pause that would start after the episode has ended leaves nothing to see.
    long_enough = demos.injected_idle & ~demos.injected_failed & (demos.length >= 8)
    assert np.mean([s not in kept_seeds for s in demos.seed[long_enough]]) >= 0.95
    assert sum(report.dropped.values()) == report.total - report.kept


# --- collection ------------------------------------------------------------------------------------


def test_collect_is_deterministic_and_independent_of_batching():
    counts = {"pick": 3, "place": 2, "stack": 1, "pour": 2}
    quality = tt.DemoQuality(noise=0.1, idle=0.3)
    # all eight episodes in one batch, batches of 3 that cut across families, one at a time
    a = demo_mod.collect_demos(counts, "unseen", quality, seed=5, num_envs=8)
    for num_envs in (3, 1):
        b = demo_mod.collect_demos(counts, "unseen", quality, seed=5, num_envs=num_envs)
        for name in ("images", "states", "actions", "episode", "step", "seed", "success", "length"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert a.instruction.tolist() == b.instruction.tolist()
    assert a.family.tolist() == [0, 0, 0, 1, 1, 2, 3, 3]
    assert (a.split == 1).all() and a.success.all()
    # Images are what the env showed before each action: the first is the reset frame.
    env = tt.TabletopEnv()
    first = env.reset(a.seed[:1], "pick/unseen")["image"][0]
    np.testing.assert_array_equal(a.images[0], first)


def test_heldout_seeds_never_repeat_training_seeds():
    train = demo_mod.episode_seeds("pick", "seen", 500, seed=0)
    held = demo_mod.episode_seeds("pick", "seen", 500, seed=0, stream=1)
    assert len(set(train)) == 500 and not set(train) & set(held)
    assert (train % 2 == 0).all() and (held % 2 == 1).all()
    ds = datasets.heldout_dataset("unseen", per_family=2, horizon=4)
    assert set(ds.task.tolist()) == {0, 1, 2, 3} and (ds.split == 1).all()


def test_scaled_counts_keep_the_recipe_imbalance():
    assert demo_mod.scaled_counts(0.01) == {"pick": 500, "place": 300, "stack": 20, "pour": 5}
    assert demo_mod.scaled_counts(0.001) == {"pick": 50, "place": 30, "stack": 2, "pour": 1}
    with pytest.raises(UsageError):
        demo_mod.scaled_counts(0)
    with pytest.raises(UsageError, match="unknown task family"):
        demo_mod.collect_demos({"juggle": 3})
    with pytest.raises(UsageError, match="no demonstrations"):
        demo_mod.collect_demos({"pick": 0})


def test_make_demo_dataset_reports_and_chunks():
    ds, report = datasets.make_demo_dataset(
        {"pick": 4, "pour": 2}, quality=tt.DemoQuality(failed=0.5), horizon=4, seed=2
    )
    assert report.total == 6 and report.kept == len(set(ds.episode.tolist()))
    assert ds.actions.shape[1:] == (4, 7) and ds.mask[:, 0].all()


# --- web data ---------------------------------------------------------------------------------------


def test_web_dataset_matches_the_examples():
    web = datasets.make_web_dataset(30, seed=2)
    ex = text.web_examples(30, seed=2)
    assert [text.ANSWERS[i] for i in web.answers] == ex.answers
    tok = text.TextTokenizer()
    assert tok.decode(web.questions) == ex.questions
    assert tok.decode(web.captions) == ex.captions
    np.testing.assert_array_equal(web.images, ex.images)


# --- augmentation --------------------------------------------------------------------------------


def test_random_shift_is_an_edge_padded_crop():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    out = augment.random_shift(images, 2, np.random.default_rng(1))
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    for i in range(4):
        crops = [padded[i, dy : dy + 16, dx : dx + 16] for dy in range(5) for dx in range(5)]
        assert any(np.array_equal(out[i], c) for c in crops)
    np.testing.assert_array_equal(augment.random_shift(images, 0, rng), images)


def test_colour_jitter_by_hand():
    img = np.full((1, 2, 2, 3), 100, np.uint8)
    img[0, 0, 0] = 200
    same = augment.colour_jitter(img, 0.0, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(same, img)
    out = augment.colour_jitter(img, 0.5, 0.5, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    b, c = rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.5)
    mean = img.astype(float).mean()
    expected = np.clip(np.rint(((img - mean) * c + mean) * b), 0, 255)
    np.testing.assert_allclose(out, expected, atol=1)
    assert out.dtype == np.uint8


def test_action_noise_touches_only_the_motion_and_stays_in_range():
    actions = np.zeros((50, 8, 7), np.float32)
    actions[..., 6] = 1.0
    out = augment.action_noise(actions, 0.5, np.random.default_rng(0))
    assert np.abs(out[..., 0:2]).max() <= 1 and out[..., 0:2].std() > 0.3
    np.testing.assert_array_equal(out[..., 2:], actions[..., 2:])
    np.testing.assert_array_equal(
        augment.action_noise(actions, 0.0, np.random.default_rng(0)), actions
    )


# --- files -------------------------------------------------------------------------------------


def test_npz_round_trip(tmp_path):
    demos = demo_mod.collect_demos({"place": 2, "pour": 1}, seed=1)
    ds = datasets.build_dataset(demos, horizon=4)
    path = files.save_dataset(tmp_path / "sub" / "demos.npz", ds)
    back = files.load_dataset(path)
    assert isinstance(back, datasets.DemoDataset)
    for name in (
        "images",
        "states",
        "tokens",
        "task",
        "split",
        "actions",
        "mask",
        "episode",
        "step",
    ):
        got, want = getattr(back, name), getattr(ds, name)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert back.instructions.tolist() == ds.instructions.tolist()
    assert tuple(back.vocab.tolist()) == text.WORLD_VOCAB
    web = datasets.make_web_dataset(10, seed=0)
    back_web = files.load_dataset(files.save_dataset(tmp_path / "web.npz", web))
    assert isinstance(back_web, datasets.WebDataset)
    np.testing.assert_array_equal(back_web.answers, web.answers)
    np.testing.assert_array_equal(back_web.images, web.images)
    assert list(tmp_path.glob("**/*.tmp")) == []


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(UsageError, match="no dataset file"):
        files.load_dataset(tmp_path / "missing.npz")
    pickled = tmp_path / "pickled.npz"
    np.savez(
        pickled, schema=np.array(files.DEMOS_SCHEMA), images=np.array([{"a": 1}], dtype=object)
    )
    with pytest.raises(DataError, match="object array"):
        files.load_dataset(pickled)
    other = tmp_path / "other.npz"
    np.savez(other, schema=np.array("something/else/1"), x=np.zeros(2))
    with pytest.raises(DataError, match="unknown dataset schema"):
        files.load_dataset(other)
    partial = tmp_path / "partial.npz"
    np.savez(partial, schema=np.array(files.DEMOS_SCHEMA), images=np.zeros((1, 2, 2, 3), np.uint8))
    with pytest.raises(DataError, match="missing fields"):
        files.load_dataset(partial)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(DataError):
        files.load_dataset(garbage)
