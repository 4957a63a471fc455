r"""Demo: back up a Milvus Lite database to S3 with the example DAGs, then run the restore drill.

Creates Milvus Backup's ``hello_milvus`` sample (int64 ``pk``, double ``random``, varchar ``comment``, 8-d
float vector ``embeddings``) in a Milvus Lite file, runs ``airflow dags test milvus_nightly_backup`` and
``airflow dags test milvus_restore_drill`` with the connections in ``AIRFLOW_CONN_*`` variables, and prints
the drill report::

    python scripts/demo.py --airflow-home .demo/airflow --milvus-db .demo/milvus.db \\
        --s3-endpoint http://127.0.0.1:9000 --access-key minioadmin --secret-key minioadmin

The S3 server must be running (``scripts/demo.sh`` starts one). Exit status 0 when both DAG runs succeeded
and the drill verified.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Return the command line arguments."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--airflow-home", required=True, help="AIRFLOW_HOME to use (created; SQLite inside)")
    p.add_argument("--milvus-db", required=True, help="Milvus Lite database file (created)")
    p.add_argument("--s3-endpoint", required=True, help="S3 endpoint URL, e.g. http://127.0.0.1:9000")
    p.add_argument("--access-key", default=os.environ.get("AWS_ACCESS_KEY_ID", "minioadmin"))
    p.add_argument("--secret-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY", "minioadmin"))
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--bucket", default="milvus-backups", help="bucket of backups (created if missing)")
    p.add_argument("--rows", type=int, default=3000, help="rows of hello_milvus")
    p.add_argument(
        "--ui",
        action="store_true",
        help="start `airflow standalone` on the demo's data instead (scripts/ui.sh)",
    )
    return p.parse_args(argv)


def airflow_env(args: argparse.Namespace) -> dict[str, str]:
    """Return the environment of the ``airflow`` commands: home, SQLite, connections, bucket."""
    home = Path(args.airflow_home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    milvus = {"conn_type": "milvus", "host": str(Path(args.milvus_db).resolve())}
    aws = {
        "conn_type": "aws",
        "login": args.access_key,
        "password": args.secret_key,
        "extra": {"endpoint_url": args.s3_endpoint, "region_name": args.region},
    }
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_MILVUS_DEFAULT": json.dumps(milvus),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws),
        "MILVUS_BACKUP_BUCKET": args.bucket,
    }


def ensure_bucket(args: argparse.Namespace) -> None:
    """Create the bucket of backups if it is missing."""
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client(
        "s3",
        endpoint_url=args.s3_endpoint,
        aws_access_key_id=args.access_key,
        aws_secret_access_key=args.secret_key,
        region_name=args.region,
    )
    try:
        s3.head_bucket(Bucket=args.bucket)
    except ClientError:
        s3.create_bucket(Bucket=args.bucket)
        print(f"Created bucket {args.bucket}")


def create_hello_milvus(db_path: str, rows: int) -> None:
    """Create ``hello_milvus`` as Milvus Backup's example does (replacing an older one)."""
    import numpy as np
    from milvus_lite.server_manager import server_manager_instance
    from pymilvus import DataType, MilvusClient

    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    client = MilvusClient(db_path)
    try:
        for name in client.list_collections():
            client.drop_collection(name)
        schema = MilvusClient.create_schema(auto_id=False, description="hello_milvus is the simplest demo")
        schema.add_field("pk", DataType.INT64, is_primary=True)
        schema.add_field("random", DataType.DOUBLE)
        schema.add_field("comment", DataType.VARCHAR, max_length=200)
        schema.add_field("embeddings", DataType.FLOAT_VECTOR, dim=8)
        index = client.prepare_index_params()
        index.add_index("embeddings", index_type="FLAT", metric_type="L2")
        client.create_collection("hello_milvus", schema=schema, index_params=index)
        rng = np.random.default_rng(19530)
        vectors = rng.random((rows, 8), dtype=np.float32)
        for start in range(0, rows, 1000):
            client.insert(
                "hello_milvus",
                [
                    {
                        "pk": i,
                        "random": float(rng.random()),
                        "comment": str(i),
                        "embeddings": vectors[i].tolist(),
                    }
                    for i in range(start, min(rows, start + 1000))
                ],
            )
        client.flush("hello_milvus")
        print(f"Created hello_milvus with {rows:,} rows in {db_path}")
    finally:
        client.close()
        # The DAG runs are other processes: let go of the embedded Milvus Lite server.
        server_manager_instance.release_server(db_path)


def run(cmd: list[str], env: dict[str, str], log_path: Path) -> None:
    """Run a command with its output in ``log_path``; on failure show the log's end and exit."""
    print(f"$ {' '.join(cmd)}  (log: {log_path})", flush=True)
    started = time.monotonic()
    with open(log_path, "w") as log:
        result = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    print(f"  exit {result.returncode} in {time.monotonic() - started:.0f} s", flush=True)
    if result.returncode != 0:
        print("".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-60:]))
        raise SystemExit(f"{cmd[1:4]} failed; see {log_path}")


def drill_report(env: dict[str, str]) -> dict[str, Any]:
    """Read the newest drill report from the XCom of ``milvus_restore_drill.drill_report``."""
    code = (
        "import json\n"
        "from airflow.models.xcom import XComModel\n"
        "from airflow.utils.session import create_session\n"
        "with create_session() as s:\n"
        "    x = (s.query(XComModel).filter(XComModel.dag_id == 'milvus_restore_drill',\n"
        "         XComModel.task_id == 'drill_report', XComModel.key == 'return_value')\n"
        "         .order_by(XComModel.timestamp.desc()).first())\n"
        "    print('DRILL=' + json.dumps(XComModel.deserialize_value(x) if x else None))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("DRILL="))
    return json.loads(line[len("DRILL=") :]) or {}


def summary(args: argparse.Namespace, report: dict[str, Any]) -> str:
    """Return what the demo made, where the backup landed and what to look at next."""
    name = report.get("backup_name", "?")
    return (
        f"Backup {name} (id {report.get('backup_id')}) landed in s3://{args.bucket}/backup/{name}/ "
        f"(on disk: .demo/s3/{args.bucket}/backup/{name}/; its manifest is meta/backup_meta.json).\n"
        f"Next: the task logs in {args.airflow_home}/demo-logs/; open the same DAGs in the Airflow UI with "
        "bash scripts/ui.sh (airflow standalone on this data, the connections set, the virtualenv's bin on "
        f"PATH; by hand: PATH=$PWD/.venv/bin:$PATH AIRFLOW_HOME={args.airflow_home} airflow standalone, with "
        "the milvus_default and aws_default connections as in README's Connections)."
    )


def serve_ui(args: argparse.Namespace, env: dict[str, str]) -> int:
    """Run ``airflow standalone`` on the demo's data, the connections set, until interrupted; return its code.

    The virtualenv's ``bin`` goes first on ``PATH``: ``airflow standalone`` starts its parts as ``airflow``
    commands found there.
    """
    ensure_bucket(args)
    if not Path(args.milvus_db).exists():
        create_hello_milvus(str(Path(args.milvus_db).resolve()), args.rows)
    env = {**env, "PATH": f"{Path(AIRFLOW).parent}{os.pathsep}{env.get('PATH', '')}"}
    print(
        "Starting Airflow on the demo's data: the UI is at http://localhost:8080 (the admin password is in "
        f"{env['AIRFLOW_HOME']}/simple_auth_manager_passwords.json.generated); Ctrl-C stops it.",
        flush=True,
    )
    return subprocess.call([AIRFLOW, "standalone"], env=env)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return 0 when the drill verified."""
    args = parse_args(argv)
    env = airflow_env(args)
    if args.ui:
        return serve_ui(args, env)
    logs = Path(env["AIRFLOW_HOME"]) / "demo-logs"
    logs.mkdir(exist_ok=True)
    ensure_bucket(args)
    create_hello_milvus(str(Path(args.milvus_db).resolve()), args.rows)
    run([AIRFLOW, "db", "migrate"], env, logs / "db-migrate.log")
    run([AIRFLOW, "dags", "test", "milvus_nightly_backup"], env, logs / "milvus_nightly_backup.log")
    run([AIRFLOW, "dags", "test", "milvus_restore_drill"], env, logs / "milvus_restore_drill.log")
    report = drill_report(env)
    print("Drill report:")
    print(json.dumps(report, indent=2, sort_keys=True))
    print(summary(args, report or {}))
    return 0 if report.get("verified") else 1


if __name__ == "__main__":
    sys.exit(main())
