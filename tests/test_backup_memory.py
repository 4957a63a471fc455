"""A backup of 200k x 768-d vectors streams: the backup process's resident memory stays flat."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest
from pymilvus import DataType, MilvusClient

from airflow_milvus_backup.engine.insert import BatchInserter
from tests.support.lite import open_client

ROWS = 200_000
DIM = 768

CHILD = textwrap.dedent(
    """
    import json, sys, threading, time
    import psutil
    from airflow_milvus_backup.engine import BackupEngine, LocalStorage, MilvusParams
    import pyarrow, pymilvus  # loaded before the baseline is taken
    proc = psutil.Process()
    uri, path = sys.argv[1], sys.argv[2]
    engine = BackupEngine(LocalStorage(path))
    peak = [0]
    done = threading.Event()
    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.05)
    baseline = proc.memory_info().rss
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    summary = engine.create(MilvusParams(uri=uri), "big", ["big"])
    done.set(); t.join()
    print(json.dumps({"baseline": baseline, "peak": peak[0], "summary": summary}))
    """
)


@pytest.mark.milvus235
@pytest.mark.slow
def test_backup_memory_stays_flat(milvus235, tmp_path):
    client = open_client(milvus235.uri)
    if client.has_collection("big"):
        client.drop_collection("big")
    s = MilvusClient.create_schema(auto_id=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection("big", schema=s, index_params=ip)
    rng = np.random.default_rng(7)
    fields = [{"name": "id", "type": "INT64", "is_primary": True}, {"name": "vec", "type": "FLOAT_VECTOR"}]
    inserter = BatchInserter(client, "big", fields, skip=set())  # columnar requests: a faster fill
    step = 10_000
    for start in range(0, ROWS, step):
        vecs = rng.random((step, DIM), dtype=np.float32)
        offsets = pa.array(np.arange(0, step * DIM + 1, DIM, dtype=np.int32))
        table = pa.table(
            {
                "id": pa.array(np.arange(start, start + step, dtype=np.int64)),
                "vec": pa.ListArray.from_arrays(offsets, vecs.ravel()),
            }
        )
        inserter.insert(table, None)
    assert inserter.columnar == ["id", "vec"]
    client.flush("big")
    client.close()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, milvus235.uri, str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    data_bytes = ROWS * DIM * 4
    growth = result["peak"] - result["baseline"]
    assert result["summary"]["rows"] == ROWS
    assert growth < data_bytes * 0.25, (
        f"RSS grew by {growth / 1e6:.0f} MB for {data_bytes / 1e6:.0f} MB of vectors"
    )
