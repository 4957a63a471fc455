"""Physical restore vs a bare sequence of ``do_bulk_insert(backup=true)`` calls, on Milvus 2.3.5 (issue 10).

    .venv/bin/python bench/physical_restore.py [N ...] [--partitions P] [--segments S] [--poll-interval X ...]
    # sizes in rows of 768-d vectors, default 100_000 300_000; P partitions (default 3), each flushed S times
    # (default 2) so that it holds S segments: P x S import units

Starts a Milvus 2.3.5 on an rclone S3 server (:mod:`bench._servers`), and for each size N (ascending) grows
one collection to N rows spread over P partitions, each partition flushed S times (so the backup holds
P x S sealed segments, one import unit each), backs it up physically into Milvus' own bucket, and then, in
the same run and on the same backup:

* **ours**: ``RestoreEngine(storage, milvus_storage=...).restore(params, name, collection_suffix=...)``, end
  to end (plan, create the collection, check the binlogs, submit every import job, poll them, index, load,
  count per partition), with the engine's default ``poll_interval`` (or each ``--poll-interval`` given);
* **bare**: a new collection with the same schema and partitions, the same units imported one after the
  other with ``utility.do_bulk_insert(collection, files=[insert_dir, delta_dir or ""],
  partition_name=..., backup="true")``, each polled every 50 ms until completed, then the same FLAT index,
  load and ``count(*)``. Shown with and without the index+load part.

While our restore runs, a thread polls every import job of the target every 50 ms (``GetImportState``) and
records when each was first seen running and completed: "overlap" is the most jobs seen running at once (1:
the server ran them one at a time although all were submitted together). The bare way is sequential by
construction. Prints one row per size: rows, units, our seconds, bare seconds (with index+load, and the
imports alone), the ratio ours/bare and the overlap.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._servers import DIM, insert_random, milvus235_on_s3  # noqa: E402

POLL = 0.05


def grow(client: Any, name: str, have: int, n: int, parts: list[str], segments: int, rng: Any) -> None:
    """Add rows ``have .. n-1`` to ``name``: an equal share per partition, flushed ``segments`` times each."""
    share = n - have
    pieces = len(parts) * segments
    bounds = [have + share * i // pieces for i in range(pieces + 1)]
    for i in range(pieces):
        insert_random(client, name, bounds[i], bounds[i + 1], rng, partition=parts[i % len(parts)])
        if i % len(parts) == len(parts) - 1:
            client.flush(name)  # one sealed segment per partition per round


def create(client: Any, name: str, parts: list[str]) -> None:
    """Create the bench collection (``id`` INT64 key, ``vec`` 768-d) with ``parts`` beside ``_default``."""
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    client.create_collection(name, schema=schema)
    for p in parts:
        if p != "_default":
            client.create_partition(name, p)


def index_load_count(client: Any, name: str) -> int:
    """Build the FLAT index, load, and return ``count(*)`` (what our restore does after the imports)."""
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_index(name, ip)
    client.load_collection(name)
    res = client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")
    return int(res[0]["count(*)"])


class JobWatch:
    """Poll every import job of a collection every 50 ms; record when each was seen running and completed."""

    def __init__(self, uri: str, collection: str) -> None:
        from pymilvus import MilvusClient

        self.client = MilvusClient(uri)
        self.collection = collection
        self.seen: dict[int, dict[str, float]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from airflow_milvus_backup.engine.physical import importer

        while not self.stop.wait(POLL):
            try:
                jobs = importer.list_jobs(self.client, self.collection)
            except Exception:  # noqa: BLE001 - the collection does not exist yet
                continue
            now = time.monotonic()
            for jid, st in jobs.items():
                rec = self.seen.setdefault(jid, {})
                if st.state == "running":
                    rec.setdefault("running", now)
                if st.state in ("completed", "failed"):
                    rec.setdefault("running", now)
                    rec.setdefault("done", now)

    def finish(self, t0: float) -> dict[str, Any]:
        """Stop; return the most jobs seen running at once and when (after ``t0``) the first and last ran."""
        self.stop.set()
        self.thread.join()
        self.client.close()
        spans = [(r["running"], r.get("done", float("inf"))) for r in self.seen.values() if "running" in r]
        return {
            "overlap": max((sum(1 for a, b in spans if a <= t < b) for t, _ in spans), default=0),
            "first_running_at": min((a for a, _ in spans), default=t0) - t0,
            "last_done_at": max((b for _, b in spans), default=t0) - t0,
        }


def ours(
    milvus: Any, storage: Any, ms: Any, name: str, suffix: str, source: str, poll: float | None
) -> dict[str, Any]:
    from airflow_milvus_backup.engine.client import MilvusParams
    from airflow_milvus_backup.engine.restore import RestoreEngine

    watch = JobWatch(milvus.uri, source + suffix)
    t0 = time.monotonic()
    kw = {} if poll is None else {"poll_interval": poll}
    report = RestoreEngine(storage, milvus_storage=ms, **kw).restore(
        MilvusParams(uri=milvus.uri), name, collection_suffix=suffix
    )
    seconds = time.monotonic() - t0
    return {"seconds": seconds, **watch.finish(t0), "state": report.get("state")}


def bare(milvus: Any, storage: Any, name: str, target: str, parts: list[str]) -> dict[str, Any]:
    from pymilvus import MilvusClient, connections, utility
    from pymilvus.client.types import BulkInsertState

    from airflow_milvus_backup.engine.physical import importer
    from airflow_milvus_backup.engine.physical.restore import backup_info

    info = backup_info(storage, name)
    loc = storage.import_location()
    units = [u for c in info.collection_backups for u in importer.import_units(name, c)]
    client = MilvusClient(milvus.uri)
    alias = f"bare-{target}"
    connections.connect(alias, uri=milvus.uri)
    t0 = time.monotonic()
    create(client, target, parts)
    t1 = time.monotonic()
    rows = 0
    for u in units:
        delta = loc.import_path(u.delta_dir.rstrip("/")) + "/" if u.delta_dir else ""
        files = [loc.import_path(u.insert_dir.rstrip("/")) + "/", delta]
        job = utility.do_bulk_insert(
            target, files=files, partition_name=u.partition_name, backup="true", using=alias
        )
        while True:
            st = utility.get_bulk_insert_state(job, using=alias)
            if st.state == BulkInsertState.ImportCompleted:
                rows += st.row_count
                break
            if st.state in (BulkInsertState.ImportFailed, BulkInsertState.ImportFailedAndCleaned):
                sys.exit(f"bare import of {files} failed: {st.failed_reason}")
            time.sleep(POLL)
    t2 = time.monotonic()
    count = index_load_count(client, target)
    t3 = time.monotonic()
    connections.disconnect(alias)
    client.close()
    return {"seconds": t3 - t0, "imports_seconds": t2 - t1, "create_seconds": t1 - t0, "rows": count}


def main(sizes: list[int], partitions: int, segments: int, polls: list[float | None]) -> None:
    import numpy as np
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.backup import BackupEngine
    from airflow_milvus_backup.engine.client import MilvusParams
    from airflow_milvus_backup.engine.physical.milvus_storage import open_milvus_bucket
    from airflow_milvus_backup.engine.storage_s3 import S3Storage

    parts = ["_default"] + [f"p{i}" for i in range(1, partitions)]
    with milvus235_on_s3("bench-prestore-") as (milvus, s3):
        client = MilvusClient(milvus.uri)
        create(client, "bench", parts)
        rng = np.random.default_rng(0)
        ms = open_milvus_bucket(s3.client(), milvus.bucket, milvus.root_path)
        storage = S3Storage(s3.client(), milvus.bucket, "backups")
        params = MilvusParams(uri=milvus.uri)
        have, lines = 0, []
        for n in sorted(sizes):
            t0 = time.monotonic()
            grow(client, "bench", have, n, parts, segments, rng)
            have = n
            name = f"b{n}"
            BackupEngine(storage).create(params, name, ["bench"], mode="physical", milvus_storage=ms)
            units = sum(1 for _ in _units(storage, name))
            took = time.monotonic() - t0
            print(f"{n:,} rows inserted, flushed and backed up ({units} units) in {took:.1f} s", flush=True)
            # ours first: a warm-up would favour the second
            runs = {p: ours(milvus, storage, ms, name, f"_r{i}_{n}", "bench", p) for i, p in enumerate(polls)}
            b = bare(milvus, storage, name, f"bare{n}", parts)
            if b["rows"] != n:
                sys.exit(f"rows: bare {b['rows']}, want {n}")
            for i, (p, o) in enumerate(runs.items()):
                restored = int(client.get_collection_stats(f"bench_r{i}_{n}")["row_count"])
                if restored != n:
                    sys.exit(f"rows: ours {restored}, want {n}")
                poll = "default" if p is None else p
                line = (
                    f"{n:>9,} rows  {units:3d} units  ours (poll_interval {poll}) {o['seconds']:7.2f} s  "
                    f"bare {b['seconds']:7.2f} s (imports alone {b['imports_seconds']:7.2f} s)  "
                    f"ratio {o['seconds'] / b['seconds']:.3f}  ours: jobs running "
                    f"{o['first_running_at']:.1f}-{o['last_done_at']:.1f} s, "
                    f"seen running at once: {o['overlap']}"
                )
                lines.append(line)
                print(line, flush=True)
                client.drop_collection(f"bench_r{i}_{n}")
            print(json.dumps({"rows": n, "units": units, "ours": runs, "bare": b}), flush=True)
            client.drop_collection(f"bare{n}")
        print("\n".join(lines))


def _units(storage: Any, name: str) -> Any:
    from airflow_milvus_backup.engine.physical import importer
    from airflow_milvus_backup.engine.physical.restore import backup_info

    for c in backup_info(storage, name).collection_backups:
        yield from importer.import_units(name, c)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[100_000, 300_000])
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--segments", type=int, default=2)
    ap.add_argument(
        "--poll-interval",
        type=float,
        action="append",
        help="run our restore with this poll_interval (repeatable; default: the engine's default only)",
    )
    a = ap.parse_args()
    main(a.sizes, a.partitions, a.segments, a.poll_interval or [None])
