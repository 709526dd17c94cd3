"""Rollout videos: which episodes, replayed frame for frame, MP4 or GIF, and the index."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from vla_eval.cli import main
from vla_eval.envs.tabletop import TabletopEnv
from vla_eval.online.videos import choose, videos_dir

ROOT = Path(__file__).parents[2]
PLUGINS = "tests.policies.plugins"


@pytest.fixture(autouse=True)
def _importable_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))


def records(path: Path) -> dict:
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    return {(r["task"], r["split"], r["seed"]): r for r in recs}


def test_choose_takes_both_outcomes_lowest_seeds_first() -> None:
    # pick/seen: successes at seeds 2, 5 only; place/seen: no failure at all.
    outcomes = {("pick", "seen", s): s in (2, 5) for s in range(8)}
    outcomes |= {("place", "seen", s): True for s in range(3)}
    assert choose(outcomes, 4) == [
        ("pick", "seen", 0),  # failures 0, 1 (floor(4/2))
        ("pick", "seen", 1),
        ("pick", "seen", 2),  # successes 2, 5 (ceil(4/2))
        ("pick", "seen", 5),
        ("place", "seen", 0),  # no failure: three successes, all there are
        ("place", "seen", 1),
        ("place", "seen", 2),
    ]
    # One success short: the failures make up for it (ceil(3/2) = 2 wanted, 1 there).
    few = {("pick", "seen", s): s == 6 for s in range(8)}
    assert choose(few, 3) == [("pick", "seen", 0), ("pick", "seen", 1), ("pick", "seen", 6)]
    assert choose(few, 0) == []


def run_with_videos(tmp_path: Path, policy: str, *extra: str) -> tuple[Path, dict]:
    out = tmp_path / "run.jsonl"
    argv = ["online", "--policy", policy, "--tasks", "pick,place", "--trials", "4"]
    argv += ["--out", str(out), "--no-progress", "--json", *extra]
    assert main(argv) == 0
    return out, json.loads(videos_dir(out).joinpath("videos.json").read_text())


def test_videos_replay_the_chosen_episodes_frame_for_frame(tmp_path, capsys) -> None:
    import imageio.v2 as iio

    out, index = run_with_videos(tmp_path, f"{PLUGINS}:picky", "--videos", "3")
    body = json.loads(capsys.readouterr().out)
    assert body["videos"]["files"] == index["videos"]
    assert index["schema"] == "vla-eval/videos/1" and index["format"] == "mp4"
    recs = records(out)
    outcomes = {k: r["success"] for k, r in recs.items()}
    chosen = choose(outcomes, 3)
    assert [(v["task"], v["split"], v["seed"]) for v in index["videos"]] == chosen
    assert {v["recorded"] for v in index["videos"]} == {"success", "failure"}
    folder = videos_dir(out)
    assert folder == tmp_path / "run.videos"
    files = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert files == sorted([*(v["file"] for v in index["videos"]), "videos.json"])
    env = TabletopEnv()
    for v in index["videos"]:
        rec = recs[(v["task"], v["split"], v["seed"])]
        outcome = "success" if rec["success"] else "failure"
        assert v["file"] == f"{v['task']}__{v['split']}__seed{v['seed']}__{outcome}.mp4"
        assert (v["recorded"], v["replayed"], v["matches"]) == (outcome, outcome, True)
        # (not list(reader): the reader says its length is infinite)
        frames = [f for f in iio.get_reader(folder / v["file"], format="FFMPEG")]
        assert len(frames) == v["frames"] == rec["steps"] + 1  # first observation + each step
        assert frames[0].shape == (256, 256, 3)  # 64 px frames enlarged 4x
        # The first frame is the episode's first observation, enlarged (H.264 is lossy).
        first = env.reset([v["seed"]], f"{v['task']}/{v['split']}")["image"][0]
        expected = np.repeat(np.repeat(first, 4, axis=0), 4, axis=1).astype(float)
        assert np.abs(frames[0].astype(float) - expected).mean() < 4.0


def test_a_replay_that_ends_differently_is_said(tmp_path, capsys) -> None:
    # Position 0 of every batch idles: in the run, seed 0 of each (task, split) fails
    # (batches of 4 = one task and split); in the replay, other episodes sit at position 0.
    _, index = run_with_videos(
        tmp_path, f"{PLUGINS}:first_row_idles", "--batch-size", "4", "--videos", "2"
    )
    err = capsys.readouterr().err
    differ = [v for v in index["videos"] if not v["matches"]]
    assert differ and all(v["recorded"] != v["replayed"] for v in differ)
    for v in differ:
        assert f"the replay of {v['task']}/{v['split']} seed {v['seed']} ended in" in err
    assert {(v["seed"], v["recorded"]) for v in index["videos"]} == {(0, "failure"), (1, "success")}


def test_gif_when_imageio_ffmpeg_is_missing(tmp_path, monkeypatch, capsys) -> None:
    from PIL import Image

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import raises ImportError
    out, index = run_with_videos(tmp_path, "expert", "--videos", "1", "--splits", "seen")
    assert "imageio-ffmpeg is not installed; writing GIF" in capsys.readouterr().err
    assert index["format"] == "gif" and len(index["videos"]) == 2
    for v in index["videos"]:
        assert v["file"].endswith("__success.gif")
        with Image.open(videos_dir(out) / v["file"]) as gif:
            assert gif.size == (256, 256)
            durations = []
            for frame in range(gif.n_frames):
                gif.seek(frame)
                durations.append(gif.info["duration"])
        # Pillow merges identical frames, adding their durations: 100 ms per frame in all.
        assert sum(durations) == 100 * v["frames"] == 100 * (v["replayed_steps"] + 1)


def test_no_videos_no_folder_and_missing_imageio_fails_before_the_run(
    tmp_path, monkeypatch, capsys
) -> None:
    out = tmp_path / "a.jsonl"
    argv = ["online", "expert", "--tasks", "pick", "--trials", "1", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    assert out.exists() and not videos_dir(out).exists()
    monkeypatch.setitem(sys.modules, "imageio", None)
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "b.jsonl"), "--videos", "1"]) == 2
    err = capsys.readouterr().err
    assert "--videos needs imageio: pip install 'vla-eval[gym]'" in err and err.count("\n") == 1
    assert not (tmp_path / "b.jsonl").exists()


def test_tabletop_render_is_the_observed_image() -> None:
    env = TabletopEnv()
    env.reset([3, 4], "stack/seen")
    obs, *_ = env.step(np.full((2, 7), 0.5))
    frames = env.render()
    assert frames.shape == (2, 64, 64, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, obs["image"])


def test_resume_adds_videos_without_rolling_out_and_drops_stale_ones(tmp_path) -> None:
    out = tmp_path / "a.jsonl"
    argv = ["online", "expert", "--tasks", "pick", "--splits", "seen", "--trials", "3"]
    argv += ["--out", str(out), "--no-progress"]
    assert main(argv) == 0
    before = out.read_bytes()
    assert main([*argv, "--resume", "--videos", "2"]) == 0
    names = lambda: sorted(p.name for p in videos_dir(out).iterdir() if p.suffix == ".mp4")  # noqa: E731
    assert names() == ["pick__seen__seed0__success.mp4", "pick__seen__seed1__success.mp4"]
    assert main([*argv, "--resume", "--videos", "1"]) == 0
    assert names() == ["pick__seen__seed0__success.mp4"]
    assert out.read_bytes() == before  # nothing rolled out again


def test_without_render_the_frames_are_the_image_observations(tmp_path) -> None:
    import imageio.v2 as iio

    from vla_eval import online

    class NoRender(TabletopEnv):
        render = None  # an environment that only observes images

    env = NoRender()
    cfg = online.OnlineConfig(trials=1, tasks=("pick",), splits=("seen",), policy_name="e")
    from vla_eval.envs.tabletop import ExpertPolicy

    out = online.run(env, ExpertPolicy(env), cfg, tmp_path / "a.jsonl", progress=False, videos=1)
    index = json.loads((videos_dir(out) / "videos.json").read_text())
    (v,) = index["videos"]
    frames = [f for f in iio.get_reader(videos_dir(out) / v["file"], format="FFMPEG")]
    assert len(frames) == v["replayed_steps"] + 1 and frames[0].shape == (256, 256, 3)


def test_videos_of_a_gymnasium_benchmark(tmp_path) -> None:
    pytest.importorskip("gym_pusht", reason="needs the gym extra: pip install 'vla-eval[gym]'")
    import imageio.v2 as iio

    out = tmp_path / "pusht.jsonl"
    argv = ["online", "--policy", f"{PLUGINS}:constant", "--policy-arg", "value=300"]
    argv += ["--env", "gym:gym_pusht/PushT-v0", "--trials", "2", "--max-steps", "12"]
    assert main([*argv, "--videos", "1", "--out", str(out), "--no-progress"]) == 0
    index = json.loads((videos_dir(out) / "videos.json").read_text())
    (v,) = index["videos"]
    assert v["file"] == "PushT-v0__seen__seed0__failure.mp4" and v["matches"]
    assert index["fps"] == 10.0  # gym-pusht's metadata["render_fps"]
    frames = [f for f in iio.get_reader(videos_dir(out) / v["file"], format="FFMPEG")]
    # 12 steps + the first frame; gym-pusht draws 680 px, padded to a multiple of 16.
    assert len(frames) == 13 and frames[0].shape == (688, 688, 3)
