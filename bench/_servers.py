"""The servers of the physical benches: a Milvus 2.3.5 whose binlogs live on an rclone S3 server.

:func:`milvus235_on_s3` starts both (``tests.support`` servers, as the tests use them) in a fresh temporary
directory, and stops them and deletes it on exit; :func:`insert_random` grows a collection with seeded random
768-d rows.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DIM = 768
BATCH = 5000


@contextmanager
def milvus235_on_s3(prefix: str) -> Iterator[tuple[Any, Any]]:
    """Yield ``(milvus, s3)``: a running ``Milvus235Server`` and its ``S3Server``; both stopped after.

    Their data (GBs at 300k+ rows) is deleted after they stop; ``BENCH_KEEP=1`` keeps it.
    """
    from tests.support.milvus235 import Milvus235Server
    from tests.support.s3 import S3Server

    base = Path(tempfile.mkdtemp(prefix=prefix))
    s3 = S3Server(base / "s3")
    milvus = Milvus235Server(base / "milvus", s3)
    s3.start()
    milvus.start()
    try:
        yield milvus, s3
    finally:
        milvus.stop()
        s3.stop()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(base, ignore_errors=True)


def insert_random(
    client: Any, collection: str, start: int, stop: int, rng: Any, *, partition: str = "", dim: int = DIM
) -> None:
    """Insert rows ``id`` ``start .. stop-1`` with random ``vec`` of ``dim`` floats, in batches of 5000."""
    import numpy as np

    for lo in range(start, stop, BATCH):
        rows = min(BATCH, stop - lo)
        vecs = rng.random((rows, dim), dtype=np.float32)
        client.insert(
            collection,
            [{"id": lo + i, "vec": vecs[i].tolist()} for i in range(rows)],
            partition_name=partition,
        )
