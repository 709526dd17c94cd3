#!/usr/bin/env bash
# Build .venv-lerobot (scripts/lerobot-env.sh: LeRobot with the torch it pins, and vla-eval),
# then run the LeRobot tests in it, offline: nothing may download weights or data.
# pytest's exit status 5 ("no tests collected") is a failure here, not a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/lerobot-env.sh || exit 1
HF_HUB_OFFLINE=1 .venv-lerobot/bin/python -m pytest tests/lerobot -p no:cacheprovider "$@"
code=$?
if [ "$code" -eq 5 ]; then
  echo "no LeRobot tests were collected: treating as a failure" >&2
  exit 1
fi
exit "$code"
