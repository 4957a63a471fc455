#!/usr/bin/env bash
# Open the demo in the Airflow UI: `airflow standalone` on the demo's data (.demo/, made by scripts/demo.sh, or
# made here if missing), with a local S3 server and the milvus_default / aws_default connections set, and the
# virtualenv's bin on PATH. Ctrl-C stops Airflow and the S3 server.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
source scripts/_demo_s3.sh
.venv/bin/python scripts/demo.py --ui --airflow-home .demo/airflow --milvus-db .demo/milvus_demo.db \
  --s3-endpoint "http://127.0.0.1:$port" --access-key "$key" --secret-key "$secret" "$@"
