"""Physical vs logical backup of one collection on Milvus 2.3.5 (issue 10's speed target: >= 10x).

    .venv/bin/python bench/physical_backup.py [N ...]     # sizes in rows of 768-d vectors, default 1_000_000

Starts a Milvus 2.3.5 on an rclone S3 server (tests.support), and for each size N (ascending) grows one
collection to N rows, flushes it, then backs it up logically and physically into another bucket of that
server. Each backup runs in a child process (``--child``, imports done and Milvus connected once before its
clock starts), so that its RSS is the backup's own and not the row generator's: the peak of its RSS sampled
every 20 ms during ``create`` (``ru_maxrss`` is printed too, but it is the imports' high-water mark). Prints
one line per size and mode: seconds of ``BackupEngine.create``, Milvus' CPU seconds during it (user+system
of the ``milvus`` process, psutil), the S3 server's CPU seconds (rclone: where a server-side copy's work is
done), the RSS, and the ratio logical/physical. ``BENCH_LOG=1`` shows the backups' logs, ``BENCH_PROFILE=1``
a cProfile of each. The physical backup runs with the defaults (every copy checked by size and ETag;
rclone computes no S3 checksum, so the sidecar records each single-part copy's MD5 ETag, equal to its
source's, and reads nothing back), then with ``etag_md5=False`` (each copy read back once for its SHA-256,
the default before) to show what the read-back costs. The line of each physical backup counts the digests its
sidecar records for the binlogs, by the kind ``verify_backup`` checks.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._servers import DIM, insert_random, milvus235_on_s3  # noqa: E402

MiB = 1 << 20


def _cpu(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one backup as ``spec`` says; return its seconds, CPU figures and peak RSS."""
    import psutil

    from airflow_milvus_backup.engine.backup import BackupEngine
    from airflow_milvus_backup.engine.client import MilvusParams, connect
    from airflow_milvus_backup.engine.physical.backup import PhysicalOptions
    from airflow_milvus_backup.engine.physical.copier import CopyOptions
    from airflow_milvus_backup.engine.physical.milvus_storage import open_milvus_bucket
    from airflow_milvus_backup.engine.storage_s3 import S3Storage
    from tests.support.s3 import boto_client

    # imported and connected once before the clock starts: create() imports pymilvus lazily, and with
    # PYTHONDONTWRITEBYTECODE that costs seconds of compiling
    connect(MilvusParams(uri=spec["uri"])).close()
    s3 = spec["s3"]

    def client() -> Any:
        return boto_client(s3["endpoint"], s3["access_key"], s3["secret_key"])

    physical = None
    if spec["mode"] == "physical":
        physical = PhysicalOptions(copy=CopyOptions(hash_server_copies=True, etag_md5=not spec["sha256"]))
    engine = BackupEngine(S3Storage(client(), spec["bucket"], "backup"))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(threadName)s %(message)s", stream=sys.stderr
    )
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    me = psutil.Process()
    rss_start = me.memory_info().rss / MiB
    peak = [me.memory_info().rss]
    done = threading.Event()

    def sample() -> None:  # the RSS while the backup runs, every 20 ms
        while not done.wait(0.02):
            peak[0] = max(peak[0], me.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0, s3cpu0, t0 = _cpu(spec["milvus_pid"]), _cpu(spec["s3_pid"]), time.monotonic()
    summary = engine.create(
        MilvusParams(uri=spec["uri"]),
        spec["name"],
        [spec["collection"]],
        mode=spec["mode"],
        physical=physical,
        milvus_storage=open_milvus_bucket(client(), spec["milvus_bucket"], spec["milvus_root"]),
    )
    seconds = time.monotonic() - t0
    done.set()
    sampler.join()
    return {
        "digests": _digest_kinds(engine.storage, spec["name"]) if physical else {},
        "seconds": seconds,
        "rss_during_mib": peak[0] / MiB,
        "milvus_cpu": _cpu(spec["milvus_pid"]) - cpu0,
        "s3_cpu": _cpu(spec["s3_pid"]) - s3cpu0,
        "rss_start_mib": rss_start,
        "ru_maxrss_start_mib": rss0,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": summary.get("rows"),
        "bytes": summary.get("bytes"),
    }


def _digest_kinds(storage: Any, name: str) -> dict[str, int]:
    """Count the binlogs of backup ``name`` by the digest its sidecar records for them."""
    from airflow_milvus_backup.engine.physical.sidecar import expected_digest, read_sidecar

    sidecar = read_sidecar(storage, name)
    out: dict[str, int] = {}
    for o in sidecar.objects if sidecar else ():
        if o.key.startswith("binlogs/"):
            kind = (expected_digest(o) or ("size only",))[0]
            out[kind] = out.get(kind, 0) + 1
    return out


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True
    )
    if os.environ.get("BENCH_LOG"):
        sys.stderr.write(out.stderr)
    if out.returncode:
        sys.exit(f"backup {spec['name']} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(sizes: list[int]) -> None:
    import numpy as np
    from pymilvus import DataType, MilvusClient

    with milvus235_on_s3("bench-physical-") as (milvus, s3):
        client = MilvusClient(milvus.uri)
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
        client.create_collection("bench", schema=schema)
        ip = client.prepare_index_params()
        ip.add_index("vec", index_type="FLAT", metric_type="L2")
        client.create_index("bench", ip)
        rng = np.random.default_rng(0)
        spec: dict[str, Any] = {
            "uri": milvus.uri,
            "collection": "bench",
            "bucket": s3.create_bucket("backups"),
            "milvus_bucket": milvus.bucket,
            "milvus_root": milvus.root_path,
            "milvus_pid": milvus.milvus_pid,
            "s3_pid": s3.pid,
            "s3": {"endpoint": s3.endpoint_url, "access_key": s3.access_key, "secret_key": s3.secret_key},
        }
        have = 0
        lines = []
        for n in sorted(sizes):
            t0 = time.monotonic()
            insert_random(client, "bench", have, n, rng)
            client.flush("bench")
            have = n
            print(f"{n:,} rows inserted and flushed in {time.monotonic() - t0:.1f} s", flush=True)
            out: dict[str, dict[str, Any]] = {}
            for label, mode, sha in (
                ("logical", "logical", False),
                ("physical", "physical", False),
                ("physical-sha256-back", "physical", True),
            ):
                out[label] = run_child(
                    {**spec, "name": f"b{n}_{label.replace('-', '_')}", "mode": mode, "sha256": sha}
                )
                r = out[label]
                line = (
                    f"{label:20s} {n:>9,} rows  {r['seconds']:8.2f} s  Milvus CPU {r['milvus_cpu']:7.2f} s  "
                    f"S3 server CPU {r['s3_cpu']:7.2f} s  RSS during it {r['rss_during_mib']:6.1f} MiB "
                    f"(ru_maxrss {r['peak_rss_mib']:.1f}, at its start {r['rss_start_mib']:.1f})"
                    + (f"  digests {r['digests']}" if r["digests"] else "")
                )
                lines.append(line)
                print(line, flush=True)
            for label in ("physical", "physical-sha256-back"):
                ratio = out["logical"]["seconds"] / out[label]["seconds"]
                lines.append(f"ratio logical/{label} at {n:,} rows: {ratio:.1f}x")
                print(lines[-1], flush=True)
            print(json.dumps({"rows": n, **out}), flush=True)
        print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        if os.environ.get("BENCH_PROFILE"):
            import cProfile
            import pstats

            prof = cProfile.Profile()
            result = prof.runcall(child, json.loads(sys.argv[2]))
            pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
            print(json.dumps(result))
        else:
            print(json.dumps(child(json.loads(sys.argv[2]))))
    else:
        main([int(a) for a in sys.argv[1:]] or [1_000_000])
