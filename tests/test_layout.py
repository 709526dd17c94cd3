"""The shape of the package: dependencies point down, modules and functions stay small,
and the light commands load no torch.

The import rules are read from the source (every ``import`` anywhere in a file, those
inside functions included), so a lazy import cannot hide a dependency that points up.
The torch checks run in a fresh interpreter, where nothing else has loaded torch yet.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PKG = ROOT / "vla_eval"

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80

# What every layer may use: errors, result writing, output locks, JSONL and input reading,
# and text formatting.
BASE = (
    "vla_eval.errors",
    "vla_eval.results",
    "vla_eval.locking",
    "vla_eval.jsonl",
    "vla_eval.inputs",
    "vla_eval.formatting",
)

# what a checkpoint policy may load of the trainer: the model's definition, not its training
MODEL_MODULES = (
    "vla_eval.trainer",
    "vla_eval.trainer.model",
    "vla_eval.trainer.checkpoint",
    "vla_eval.trainer.config",
)


# area -> the vla_eval modules it may import (besides itself, BASE and `vla_eval` for
# the version). A name allows the module and everything below it.
ALLOWED = {
    "vla_eval.stats": (),
    "vla_eval.actions": (),
    "vla_eval.episodes": ("vla_eval.stats",),
    "vla_eval.envs": ("vla_eval.actions", "vla_eval.stats"),
    "vla_eval.diagnose": ("vla_eval.stats", "vla_eval.actions", "vla_eval.episodes"),
    "vla_eval.report": ("vla_eval.stats", "vla_eval.episodes", "vla_eval.plots"),
    "vla_eval.trackers": ("vla_eval.stats", "vla_eval.episodes", "vla_eval.diagnose.findings"),
    "vla_eval.trainer": (
        "vla_eval.stats",
        "vla_eval.actions",
        "vla_eval.envs",
        "vla_eval.diagnose",
        "vla_eval.trackers",
        "vla_eval.config",
        "vla_eval.offline.metrics",  # the numpy metrics, and no other evaluation module
    ),
    "vla_eval.policies": (
        "vla_eval.actions",
        "vla_eval.envs",
        "vla_eval.stats",
        # model definitions and checkpoints only: never the training loop or its data
        *MODEL_MODULES[1:],
    ),
    "vla_eval.online": (
        "vla_eval.policies",
        "vla_eval.envs",
        "vla_eval.episodes",
        "vla_eval.stats",
        "vla_eval.actions",
        "vla_eval.report",
        "vla_eval.plots",
    ),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every vla_eval module a file imports, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            # `from vla_eval import offline` imports the submodule vla_eval.offline
            found.update(f"{module}.{a.name}" for a in node.names if module == "vla_eval")
    return {m for m in found if m == "vla_eval" or m.startswith("vla_eval.")}


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _files() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


@pytest.mark.parametrize("area", sorted(ALLOWED))
def test_dependencies_point_down(area: str) -> None:
    allowed = (area, *BASE, *ALLOWED[area])
    wrong = []
    for path in _files():
        if not _within(_module_name(path), area):
            continue
        for module in sorted(_imports(path)):
            if module == "vla_eval" or module.startswith("vla_eval.__"):
                continue
            if not any(_within(module, ok) for ok in allowed):
                wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_modules_and_functions_stay_small() -> None:
    long_modules, long_functions = [], []
    for path in _files():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n") + 1
        if lines > MAX_MODULE_LINES:
            long_modules.append(f"{path.relative_to(ROOT)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(
                        f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines"
                    )
    assert not long_modules, "\n".join(long_modules)
    assert not long_functions, "\n".join(long_functions)


def _loads_torch(code: str) -> bool:
    probe = f"{code}\nimport sys\nprint('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize(
    "module",
    [
        "vla_eval.protocol",
        "vla_eval.stats.intervals",
        "vla_eval.stats.compare",
        "vla_eval.stats.planning",
        "vla_eval.episodes",
        "vla_eval.report",
        "vla_eval.diagnose",
        "vla_eval.trainer.config",
        "vla_eval.offline.metrics",
    ],
)
def test_light_modules_load_no_torch(module: str) -> None:
    assert not _loads_torch(f"import {module}")


@pytest.mark.parametrize("protocol", ["quickstart.toml", "temperature_sweep.toml"])
def test_a_dry_run_reads_its_protocol_without_torch(protocol: str) -> None:
    """`vla-eval run PROTOCOL --dry-run` only reads TOML: no torch, whatever it answers."""
    code = (
        "import contextlib, io\n"
        "from vla_eval.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        f"    code = main(['run', 'protocols/{protocol}', '--dry-run', '--json'])\n"
        "assert code in (0, 2), code"
    )
    assert not _loads_torch(code)


def test_trainer_and_online_do_not_load_each_other() -> None:
    """At run time too: importing one side loads none of the other's modules."""
    probe = (
        "import importlib, pkgutil, sys\n"
        "import vla_eval.{side}\n"
        "for m in pkgutil.walk_packages(vla_eval.{side}.__path__, 'vla_eval.{side}.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.startswith('vla_eval.{other}')))"
    )
    for side, other, allowed in [
        ("online", "trainer", set(MODEL_MODULES)),
        ("trainer", "online", set()),
    ]:
        code = probe.format(side=side, other=other)
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
        )
        assert out.returncode == 0, out.stderr
        loaded = set(ast.literal_eval(out.stdout.strip().splitlines()[-1])) - allowed
        assert not loaded, f"importing vla_eval.{side} loads {sorted(loaded)}"
    # the trainer's evaluation code is the numpy metrics, nothing else of offline
    code = probe.format(side="trainer", other="offline")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0, out.stderr
    loaded = set(ast.literal_eval(out.stdout.strip().splitlines()[-1]))
    assert loaded <= {"vla_eval.offline", "vla_eval.offline.metrics"}, sorted(loaded)
