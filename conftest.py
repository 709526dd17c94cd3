"""Marks the numerically sensitive tests, so CI can run them again on other CPU kernels.

A test is `kernels`-marked when it trains, evaluates or compares the floats of a model:
the trainer (and its crash-and-resume tests), Diagnose on the reference trainer, offline
numbers and the quickstart.
`.ci/run` runs `-m kernels` a second time with ``ATEN_CPU_CAPABILITY=default`` and one
torch thread, which gives other rounding than this machine's vector kernels.
"""

from __future__ import annotations

import importlib.util

import pytest

# LeRobot pins an older torch: its tests run in their own environment, .venv-lerobot
# (`scripts/test-lerobot.sh`, which the README's test command runs after this suite).
collect_ignore = [] if importlib.util.find_spec("lerobot") else ["tests/lerobot"]

# path fragments (relative to the repository, "/"-separated) of the sensitive tests
KERNEL_SENSITIVE = (
    "tests/trainer/",
    "tests/diagnose/test_reference_trainer",
    "tests/reliability/test_train",
    "tests/offline/",
    "tests/test_offline",
    "tests/test_quickstart",
    "tests/quickstart/",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath
    for item in items:
        try:
            where = item.path.relative_to(root).as_posix()
        except ValueError:
            continue
        if any(fragment in where for fragment in KERNEL_SENSITIVE):
            item.add_marker(pytest.mark.kernels)
