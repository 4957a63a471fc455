#!/usr/bin/env bash
# The benchmark in one command: builds .venv if needed (scripts/_venv.sh), then runs bench/run.py.
# Takes the same flags, e.g. `bash bench/run.sh --rows 1000000 --servers 235`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  source scripts/_venv.sh
fi
exec .venv/bin/python bench/run.py "$@"
