#!/usr/bin/env bash
# Open the demo in the Airflow UI: `airflow standalone` on the demo's data (.demo/, made by scripts/demo.sh, or
# made here if missing), with a local S3 server and the milvus_default / aws_default connections set, and the
# virtualenv's bin on PATH. Ctrl-C stops Airflow and the S3 server.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
mkdir -p .demo/s3/milvus-backups
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
key=demoaccesskey
secret=$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(16))')
.venv/bin/rclone serve s3 .demo/s3 --addr "127.0.0.1:$port" --auth-key "$key,$secret" >.demo/s3.log 2>&1 &
s3_pid=$!
trap 'kill $s3_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  if .venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then break; fi
  sleep 0.2
done
.venv/bin/python scripts/demo.py --ui --airflow-home .demo/airflow --milvus-db .demo/milvus_demo.db \
  --s3-endpoint "http://127.0.0.1:$port" --access-key "$key" --secret-key "$secret" "$@"
