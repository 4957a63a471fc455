# Sourced by scripts/demo.sh and scripts/ui.sh: start `rclone serve s3` over .demo/s3 on a free port with a
# fresh secret, stopped when the script exits; sets $port, $key and $secret.
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
