"""Strict TOML -> dataclass mapping: unknown keys and wrong types name key and file."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import pytest

from vla_eval.config import from_dict, read_toml, to_dict
from vla_eval.errors import UsageError


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    mode: Literal["full", "lora"] = "full"


@dataclass(frozen=True)
class Outer:
    name: str
    steps: int = 10
    temperature: float = 1.0
    tasks: tuple[str, ...] = ("pick",)
    counts: dict[str, int] = field(default_factory=dict)
    inner: Inner = Inner()
    note: str | None = None

    def __post_init__(self) -> None:
        if self.steps <= 0:
            raise ValueError(f"steps must be positive, got {self.steps}")


def write(tmp_path, text: str):
    path = tmp_path / "p.toml"
    path.write_text(text)
    return path


def test_round_trip(tmp_path) -> None:
    path = write(
        tmp_path,
        'name = "x"\nsteps = 5\ntemperature = inf\ntasks = ["pick", "pour"]\n'
        'counts = {pick = 3}\n[inner]\nlr = 1\nmode = "lora"\n',
    )
    cfg = from_dict(Outer, read_toml(path), str(path))
    assert cfg.steps == 5 and math.isinf(cfg.temperature) and cfg.tasks == ("pick", "pour")
    assert cfg.inner == Inner(lr=1.0, mode="lora") and isinstance(cfg.inner.lr, float)
    assert to_dict(cfg)["tasks"] == ["pick", "pour"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('name = "x"\nstep = 5\n', "unknown key step"),
        ('name = "x"\n[inner]\nrate = 1\n', "unknown key inner.rate"),
        ('name = "x"\nsteps = "5"\n', "steps must be an integer"),
        ('name = "x"\nsteps = true\n', "steps must be an integer"),
        ('name = "x"\ntasks = "pick"\n', "tasks must be a list"),
        ('name = "x"\n[inner]\nmode = "half"\n', "inner.mode must be one of"),
        ("steps = 5\n", "missing required key name"),
        ('name = "x"\nsteps = 0\n', "steps must be positive"),
        ('name = "x"\ninner = 3\n', "inner must be a table"),
        ("name = \n", "not valid TOML"),
    ],
)
def test_errors_name_key_and_file(tmp_path, text, fragment) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UsageError, match=fragment) as exc:
        from_dict(Outer, read_toml(path), str(path))
    assert str(path) in str(exc.value)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        read_toml(tmp_path / "nope.toml")


@dataclass(frozen=True)
class Fixed:
    pair: tuple[float, int] = (1.0, 2)


def test_fixed_length_tuple(tmp_path) -> None:
    path = write(tmp_path, "pair = [3, 4]\n")
    assert from_dict(Fixed, read_toml(path), str(path)).pair == (3.0, 4)
    path = write(tmp_path, 'pair = [3, "x"]\n')
    with pytest.raises(UsageError, match=r"pair\[1\] must be an integer"):
        from_dict(Fixed, read_toml(path), str(path))
    path = write(tmp_path, "pair = [3]\n")
    with pytest.raises(UsageError, match="a list of 2 items"):
        from_dict(Fixed, read_toml(path), str(path))
