#!/usr/bin/env bash
# Install everything, then run the whole test suite (slow tests included).
# pytest's exit status 5 ("no tests collected") is a failure here, not a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
# The HTML report is checked in a real browser (headless Chromium, Debian's package).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
  echo "installing Debian's chromium for the browser test of report.html" >&2
  ($SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium) \
    >/dev/null 2>&1 || echo "could not install chromium: the browser test will fail" >&2
fi
# Tests run on every core (pytest-xdist; at most 4 workers): about 5 minutes on 2 cores.
.venv/bin/python -m pytest --numprocesses=auto --maxprocesses=4 "$@"
code=$?
if [ "$code" -eq 5 ]; then
  echo "no tests were collected: treating as a failure" >&2
  exit 1
fi
# LeRobot pins an older torch: its tests run in their own environment (.venv-lerobot).
if [ "$code" -eq 0 ] && [ "$#" -eq 0 ]; then
  bash scripts/test-lerobot.sh -q || code=1
fi
exit "$code"
