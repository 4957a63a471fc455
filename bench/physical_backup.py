"""Physical vs logical backup of one collection on Milvus 2.3.5 (issue 10's speed target: >= 10x).

    .venv/bin/python bench/physical_backup.py [N]        # N rows of 768-d vectors, default 1_000_000

Starts a Milvus 2.3.5 on an rclone S3 server (tests.support), inserts N rows, flushes, then backs the
collection up logically and physically into another bucket of that server. Prints seconds, the ratio,
Milvus' CPU seconds during each backup (utime+stime of the milvus process, /proc/<pid>/stat) and this
process's peak RSS.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from pymilvus import DataType, MilvusClient  # noqa: E402

from airflow_milvus_backup.engine.backup import BackupEngine  # noqa: E402
from airflow_milvus_backup.engine.client import MilvusParams  # noqa: E402
from airflow_milvus_backup.engine.physical.milvus_storage import open_milvus_bucket  # noqa: E402
from airflow_milvus_backup.engine.storage_s3 import S3Storage  # noqa: E402
from tests.support.milvus235 import Milvus235Server  # noqa: E402
from tests.support.s3 import S3Server  # noqa: E402

DIM = 768


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(n: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="bench-physical-"))
    s3 = S3Server(base / "s3")
    milvus = Milvus235Server(base / "milvus", s3)
    s3.start()
    milvus.start()
    try:
        client = MilvusClient(milvus.uri)
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
        client.create_collection("bench", schema=schema)
        rng = np.random.default_rng(0)
        for start in range(0, n, 5000):
            rows = min(5000, n - start)
            vecs = rng.random((rows, DIM), dtype=np.float32)
            client.insert("bench", [{"id": start + i, "vec": vecs[i].tolist()} for i in range(rows)])
        client.flush("bench")
        ip = client.prepare_index_params()
        ip.add_index("vec", index_type="FLAT", metric_type="L2")
        client.create_index("bench", ip)
        bucket = s3.create_bucket("backups")
        storage = S3Storage(s3.client(), bucket, "backup")
        params = MilvusParams(uri=milvus.uri)
        engine = BackupEngine(storage)
        pid = milvus.milvus_pid
        assert pid is not None
        out = {}
        for mode in ("logical", "physical"):
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            engine.create(
                params,
                f"b_{mode}",
                ["bench"],
                mode=mode,
                milvus_storage=open_milvus_bucket(s3.client(), milvus.bucket, milvus.root_path),
            )
            out[mode] = (time.monotonic() - t0, cpu_seconds(pid) - cpu0, peak_rss_mib())
        for mode, (secs, cpu, rss) in out.items():
            print(f"{mode:9s} {n:>9,} rows  {secs:8.2f} s  Milvus CPU {cpu:7.2f} s  peak RSS {rss:7.1f} MiB")
        print(f"ratio logical/physical: {out['logical'][0] / out['physical'][0]:.1f}x")
    finally:
        milvus.stop()
        s3.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
