#!/usr/bin/env bash
# The demo: a Milvus Lite database with hello_milvus sample data, a local S3 server (rclone, from PyPI),
# the example DAGs milvus_nightly_backup then milvus_restore_drill via `airflow dags test`; prints the drill
# report. Everything lives in .demo/ (deleted and made anew each run) and .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
rm -rf .demo && mkdir -p .demo/s3/milvus-backups
source scripts/_demo_s3.sh
.venv/bin/python scripts/demo.py --airflow-home .demo/airflow --milvus-db .demo/milvus_demo.db \
  --s3-endpoint "http://127.0.0.1:$port" --access-key "$key" --secret-key "$secret" "$@"
