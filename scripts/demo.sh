#!/usr/bin/env bash
# Install everything, then run the main demo: `vla-eval quickstart` trains a small
# policy with the recipe, evaluates it offline and online on both splits, runs
# Diagnose and writes quickstart/report.md (+ report.json and PNG figures).
# Rerunning resumes (training and rollouts) where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/vla-eval quickstart --out quickstart
