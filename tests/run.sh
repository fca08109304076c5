#!/usr/bin/env bash
# Install the test dependencies (Debian chromium for the browser test, Python packages) and run
# the whole suite. The README's test command; CI runs it too.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing: run 'sudo apt-get install -y chromium' (the browser test needs it)" >&2
  fi
fi
python3 -m pip install -q --disable-pip-version-check -r requirements-dev.txt -r requirements-ray.txt
export TF_CPP_MIN_LOG_LEVEL=2
# The core's types: no errors (config in pyproject.toml).
python3 -m mypy
exec python3 -m pytest -n 2 "$@"
