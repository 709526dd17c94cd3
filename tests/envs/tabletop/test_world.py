"""Tests for the tabletop world's task specs: seen and unseen splits, start positions."""

from __future__ import annotations

import numpy as np
import pytest

from vla_eval.envs import tabletop as tt

FAMILIES = ("pick", "place", "stack", "pour")
# Written out by hand from the documented rule: opposite colours in
# (red, green, blue, yellow, purple, orange) are held out, in either order.
HELD_OUT = {
    ("red", "yellow"),
    ("yellow", "red"),
    ("green", "purple"),
    ("purple", "green"),
    ("blue", "orange"),
    ("orange", "blue"),
}
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")


def _colours_in(instruction):
    return [w for w in instruction.split() if w in COLOURS]


@pytest.mark.parametrize("family", FAMILIES)
def test_seen_and_unseen_are_disjoint(family):
    env = tt.TabletopEnv()
    seen, unseen = env.task(f"{family}/seen"), env.task(f"{family}/unseen")
    all_pairs = {(a, b) for a in COLOURS for b in COLOURS if a != b}
    assert set(unseen.spec.colour_pairs) == HELD_OUT
    assert set(seen.spec.colour_pairs) == all_pairs - HELD_OUT
    assert not set(seen.spec.phrasings) & set(unseen.spec.phrasings)
    assert len(seen.spec.phrasings) >= 3 and len(unseen.spec.phrasings) >= 2

    seeds = np.arange(200)
    (x0, x1), (y0, y1) = (0.66, 0.88), (0.66, 0.88)
    for task in (seen, unseen):
        obs = env.reset(seeds, task)
        pos = env.scene.pos
        inside = (
            (pos[..., 0] >= x0) & (pos[..., 0] <= x1) & (pos[..., 1] >= y0) & (pos[..., 1] <= y1)
        )
        for i, text in enumerate(obs["instruction"]):
            # The pair is (manipulated, reference): the named colours, or for pick the
            # named colour and the first distractor's.
            a, b = COLOURS[env.scene.colour[i, 0]], COLOURS[env.scene.colour[i, 1]]
            assert text in {p.format(a=a, b=b) for p in task.spec.phrasings}, text
            assert a in _colours_in(text)
            assert ((a, b) in HELD_OUT) == (task.split == "unseen")
        if task.split == "seen":
            assert not inside.any()
        else:
            assert inside[:, 0].all() and not inside[:, 1:].any()


def test_start_objects_do_not_overlap():
    env = tt.TabletopEnv()
    env.reset(np.arange(300), "place/unseen")
    pos = env.scene.pos
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert (np.linalg.norm(pos[:, a] - pos[:, b], axis=1) >= 0.25).all()
