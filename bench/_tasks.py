"""One measured piece of work of the benchmark, run in its own process by ``bench/run.py``.

``python bench/_tasks.py '<json spec>'`` imports what the work needs, connects, then prints ``READY <rss>``
(its resident memory before the work), does the work and prints ``RESULT <json>``: the seconds of the work
itself (imports, connecting and data generation are outside) and its figures. The parent samples this
process's RSS while it runs, so the peak memory of a backup or a restore is the whole process's.

Tasks (``spec["task"]``):

* ``insert`` - the write limit: create the collection (schema, partitions, FLAT index) and insert the rows
  with ``MilvusClient.insert`` in batches, then flush and load: what a restore by insert does, minus
  reading a backup.
* ``drain`` - the read limit: read every row of every partition and do nothing with them. ``mode=iter``
  is ``query_iterator().next()`` (pymilvus builds a dict per row, a Python float per vector value);
  ``mode=pages`` sends the same requests through ``MilvusClient.query`` and keeps the pages columnar, as
  the backup engine reads them.
* ``backup`` / ``restore`` - the engine, on the S3 storage.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

INT64_MAX = 9223372036854775807


# --------------------------------------------------------------------------------------------- data
def partition_names(n: int) -> list[str]:
    """Return the partitions of the bench collection: ``_default`` and ``p1`` .. ``p<n-1>``."""
    return ["_default"] + [f"p{i}" for i in range(1, n)]


def partition_ranges(rows: int, parts: int) -> list[tuple[int, int]]:
    """Return the primary-key range ``[lo, hi)`` of each partition (contiguous, nearly equal)."""
    bounds = [rows * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def make_rows(lo: int, hi: int, dim: int) -> list[dict[str, Any]]:
    """Return rows ``lo .. hi-1``: the same values on every run (vectors are seeded by ``lo``)."""
    import numpy as np

    vecs = np.random.default_rng(lo).random((hi - lo, dim), dtype=np.float32)
    return [
        {
            "id": i,
            "vec": vecs[i - lo],
            "title": f"document {i:09d}",
            "meta": {"n": i, "tag": f"t{i % 7}", "score": round((i % 1000) / 7, 3)},
        }
        for i in range(lo, hi)
    ]


def logical_bytes(rows: int, dim: int) -> int:
    """Return the size of the values of ``rows`` bench rows: vectors, keys, titles and JSON text."""
    sample = make_rows(0, 1, dim)[0]
    text = len(sample["title"]) + len(json.dumps(sample["meta"], separators=(",", ":")))
    return rows * (dim * 4 + 8 + text)


def create_collection(client: Any, name: str, dim: int, parts: int) -> None:
    """Create the bench collection: INT64 key, FLOAT_VECTOR, VARCHAR, JSON; partitions; FLAT index."""
    from pymilvus import DataType, MilvusClient

    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    s.add_field("title", DataType.VARCHAR, max_length=64)
    s.add_field("meta", DataType.JSON)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=s, index_params=ip)
    for p in partition_names(parts)[1:]:
        client.create_partition(name, p)


# -------------------------------------------------------------------------------------------- tasks
def task_insert(spec: dict[str, Any], ready: Any) -> dict[str, Any]:
    from pymilvus import MilvusClient

    rows, dim, parts, batch = spec["rows"], spec["dim"], spec["partitions"], spec["batch_rows"]
    client = MilvusClient(uri=spec["uri"])
    if client.has_collection(spec["name"]):
        client.drop_collection(spec["name"])
    ready()
    began = time.perf_counter()
    create_collection(client, spec["name"], dim, parts)
    insert_seconds = [0.0]
    generate_seconds = [0.0]
    lock = threading.Lock()

    def fill(part: str, lo: int, hi: int) -> None:
        c = MilvusClient(uri=spec["uri"])
        try:
            for start in range(lo, hi, batch):
                t = time.perf_counter()
                data = make_rows(start, min(hi, start + batch), dim)
                g = time.perf_counter()
                c.insert(spec["name"], data, partition_name=part)
                with lock:
                    generate_seconds[0] += g - t
                    insert_seconds[0] += time.perf_counter() - g
        finally:
            c.close()

    threads = spec.get("threads", 1)
    jobs = list(zip(partition_names(parts), partition_ranges(rows, parts), strict=True))
    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(fill, p, lo, hi) for p, (lo, hi) in jobs]:
            f.result()
    t = time.perf_counter()
    client.flush(spec["name"])
    flush = time.perf_counter() - t
    client.load_collection(spec["name"])
    # generating the rows is not part of the write limit (spread over the threads that generated them)
    total = time.perf_counter() - began - generate_seconds[0] / threads
    result = {
        "seconds": total,
        "insert_call_seconds": insert_seconds[0],
        "flush_seconds": flush,
        "generate_seconds": generate_seconds[0],
        "rows": int(client.get_collection_stats(spec["name"])["row_count"]),
    }
    if spec.get("drop_after"):
        client.drop_collection(spec["name"])
    return result


def _drain_partition(uri: str, name: str, part: str, mode: str, batch: int, output: list[str]) -> int:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    n = 0
    try:
        it = client.query_iterator(name, batch_size=batch, output_fields=output, partition_names=[part])
        if mode == "iter":
            while rows := it.next():
                n += len(rows)
            it.close()
            return n
        session_ts = int(it.get_cursor().session_ts)
        it.close()
        cid = client.describe_collection(name)["collection_id"]
        last = None
        while True:
            page = client.query(
                name,
                filter="" if last is None else f"id > {last}",
                output_fields=output,
                partition_names=[part],
                limit=batch,
                guarantee_timestamp=session_ts,
                iterator="True",
                reduce_stop_for_best="True",
                collection_id=cid,
            )
            if len(page) == 0:
                return n
            n += len(page)
            last = list.__getitem__(page, len(page) - 1)["id"]
    finally:
        client.close()


def task_drain(spec: dict[str, Any], ready: Any) -> dict[str, Any]:
    parts = partition_names(spec["partitions"])
    output = ["id", "vec", "title", "meta"]
    ready()
    began = time.perf_counter()
    with ThreadPoolExecutor(spec.get("threads", 1)) as pool:
        futures = [
            pool.submit(_drain_partition, spec["uri"], spec["name"], p, spec["mode"], spec["batch"], output)
            for p in parts
        ]
        rows = sum(f.result() for f in futures)
    return {"seconds": time.perf_counter() - began, "rows": rows}


def _storage(spec: dict[str, Any]) -> Any:
    import boto3
    from botocore.config import Config

    from airflow_milvus_backup.engine import S3Storage

    s3 = spec["s3"]
    client = boto3.client(
        "s3",
        endpoint_url=s3["endpoint"],
        aws_access_key_id=s3["access_key"],
        aws_secret_access_key=s3["secret_key"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}),
    )
    return S3Storage(client, s3["bucket"], s3["root"])


def task_backup(spec: dict[str, Any], ready: Any) -> dict[str, Any]:
    from airflow_milvus_backup.engine import BackupEngine, MilvusParams

    engine = BackupEngine(_storage(spec), parallelism=spec["parallelism"], **spec.get("engine", {}))
    ready()
    began = time.perf_counter()
    summary = engine.create(MilvusParams(uri=spec["uri"]), spec["backup"], [spec["name"]], overwrite=True)
    return {"seconds": time.perf_counter() - began, "rows": summary["rows"], "bytes": summary["bytes"]}


def task_restore(spec: dict[str, Any], ready: Any) -> dict[str, Any]:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine import MilvusParams
    from airflow_milvus_backup.engine.restore import RestoreEngine

    engine = RestoreEngine(_storage(spec), parallelism=spec["parallelism"], **spec.get("engine", {}))
    target = spec["name"] + spec["suffix"]
    client = MilvusClient(uri=spec["uri"])
    if client.has_collection(target):
        client.drop_collection(target)
    ready()
    began = time.perf_counter()
    report = engine.restore(
        MilvusParams(uri=spec["uri"]),
        spec["backup"],
        [spec["name"]],
        collection_suffix=spec["suffix"],
        method=spec["method"],
        **spec.get("options", {}),
    )
    seconds = time.perf_counter() - began
    rows = client.query(target, filter="", output_fields=["count(*)"])[0]["count(*)"]
    if spec.get("drop_after"):
        client.drop_collection(target)
    return {"seconds": seconds, "rows": int(rows), "state": report.get("state")}


TASKS = {"insert": task_insert, "drain": task_drain, "backup": task_backup, "restore": task_restore}


def main() -> None:
    """Run the task described by the JSON in ``argv[1]``; print ``READY`` and ``RESULT`` lines."""
    # what every task needs, loaded before the memory baseline
    import numpy  # noqa: F401
    import psutil
    import pyarrow.parquet  # noqa: F401
    import pymilvus  # noqa: F401

    spec = json.loads(sys.argv[1])
    proc = psutil.Process()
    cpu_at_ready = [0.0]

    def ready() -> None:
        cpu_at_ready[0] = sum(os.times()[:2])
        print(f"READY {proc.memory_info().rss}", flush=True)

    result = TASKS[spec["task"]](spec, ready)
    # CPU spent generating rows (insert task) is not the work measured
    result["cpu_seconds"] = sum(os.times()[:2]) - cpu_at_ready[0] - result.get("generate_seconds", 0.0)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
