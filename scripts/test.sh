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
# two workers, a test module each (its module fixtures and order kept): the suite waits on servers
# (Milvus, S3, Airflow) more than it computes; PYTEST_WORKERS=1 runs it in one process
.venv/bin/python -m pytest -q -p no:cacheprovider -n "${PYTEST_WORKERS:-2}" --dist loadfile --durations=12 "$@"
