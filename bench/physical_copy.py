"""Throughput of the physical copier: N objects of M MiB, server-side copy vs streamed, on rclone servers.

PYTHONPATH=. .venv/bin/python bench/physical_copy.py [N] [M]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from airflow_milvus_backup.engine.physical.copier import CopyItem, CopyOptions, copy_objects
from airflow_milvus_backup.engine.physical.milvus_storage import open_milvus_bucket
from airflow_milvus_backup.engine.storage import S3Storage
from tests.support.s3 import S3Server


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    mib = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    base = tempfile.mkdtemp(prefix="bench-copy-")
    a, b = S3Server(f"{base}/a"), S3Server(f"{base}/b")
    a.start()
    b.start()
    try:
        ca, cb = a.client(), b.client()
        for bucket in ("milvus", "backup"):
            a.create_bucket(bucket)
        b.create_bucket("backup")
        data = os.urandom(mib << 20)
        for i in range(n):
            ca.put_object(Bucket="milvus", Key=f"files/insert_log/1/2/3/100/{i}", Body=data)
        src = open_milvus_bucket(ca, "milvus", "files")
        items = [CopyItem(f"insert_log/1/2/3/100/{i}", f"bench/binlogs/{i}", len(data)) for i in range(n)]
        for label, dest in (
            ("server-copy", S3Storage(ca, "backup", "r")),
            ("stream", S3Storage(cb, "backup", "r")),
        ):
            t = time.monotonic()
            report = copy_objects(src, dest, items, "bench", CopyOptions(concurrency=4))
            s = time.monotonic() - t
            print(f"{label:12s} {n} x {mib} MiB: {s:6.2f} s, {n * mib / s:8.1f} MiB/s, {report.by_method()}")
    finally:
        a.stop()
        b.stop()


if __name__ == "__main__":
    main()
