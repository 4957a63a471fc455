#!/usr/bin/env bash
# The test command: builds .venv if needed, installs the package with its test extra, lints and
# type-checks, runs pytest.
# Everything the tests need (Milvus Lite, Milvus 2.3.5, an S3 server) comes from PyPI into .venv, Milvus Lite
# 2.5.1 (Milvus 2.5's core) into .venv-milvus25; the tests start them themselves on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
source scripts/_venv_milvus25.sh
.venv/bin/ruff check airflow_milvus_backup dags tests bench
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=12 "$@"
