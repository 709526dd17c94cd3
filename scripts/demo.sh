#!/usr/bin/env bash
# Install everything, then run the main demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/vla-eval wilson --successes 17 --trials 20
.venv/bin/vla-eval wilson --successes 17 --trials 20 --all
