#!/usr/bin/env bash
# Create .venv (if missing) and install vla-eval with its test tools into it.
# Idempotent: a second run installs nothing new. PyTorch is pinned to the CPU
# build first, so the package's `torch>=2.3` is already satisfied and pip never
# pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EXTRAS=${VLA_EVAL_EXTRAS:-dev,sim,lora,integrations,gym,trackers,browser,ray}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/pip install -q "torch==2.13.0"
fi
.venv/bin/pip install -q -e ".[${EXTRAS}]"
