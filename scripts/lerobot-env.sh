#!/usr/bin/env bash
# Create .venv-lerobot (if missing): LeRobot next to vla-eval, in an environment of its own.
# LeRobot pins its own torch (0.4.x: torch<2.11), so this environment installs that torch
# first, then lerobot, then vla-eval editable with a constraint that keeps the torch as it
# is: vla-eval's `torch>=2.3` must admit LeRobot's torch, and pip must never replace it.
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv-lerobot
TORCH=${LEROBOT_TORCH:-2.9.1}
TORCHVISION=${LEROBOT_TORCHVISION:-0.24.1}
LEROBOT=${LEROBOT_VERSION:-0.4.4}
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "$@"; }
if ! "$VENV/bin/python" -c "import torch, torchvision" >/dev/null 2>&1; then
  pip install -q "torch==${TORCH}" "torchvision==${TORCHVISION}"
fi
pins=$(mktemp)
trap 'rm -f "$pins"' EXIT
"$VENV/bin/python" - >"$pins" <<'PY'
import importlib.metadata as m
for name in ("torch", "torchvision"):
    print(f"{name}=={m.version(name)}")
PY
if ! "$VENV/bin/python" -c "import lerobot" >/dev/null 2>&1; then
  pip install -q -c "$pins" "lerobot==${LEROBOT}"
fi
pip install -q -c "$pins" -e ".[dev,gym]"
# Fail loudly if anything above replaced the torch this environment was built on.
"$VENV/bin/python" - "$pins" <<'PY'
import importlib.metadata as m
import sys

for line in open(sys.argv[1]):
    name, want = line.strip().split("==")
    have = m.version(name)
    if have != want:
        sys.exit(f"{name} changed from {want} to {have}")
print("lerobot", m.version("lerobot"), "with torch", m.version("torch"), "and vla-eval", m.version("vla-eval"))
PY
"$VENV/bin/python" -m pip check
