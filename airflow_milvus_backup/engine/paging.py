"""Read a collection (or one partition) page by page in primary-key order, whatever the keys hold.

pymilvus' ``query_iterator`` builds its cursor as ``pk > "<last>"`` without escaping (a key with a quote, a
backslash or a line break fails to parse or skips rows) and starts an INT64 iteration with
``pk < 9223372036854775807`` (the row with the largest key is never read). :func:`pk_pages` sends the same
requests (the server's iterator mode returns each page sorted by primary key) with the cursor built by
:mod:`~airflow_milvus_backup.engine.filters`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.filters import Grammar, grammar_of, pk_compare

if TYPE_CHECKING:
    from pymilvus import MilvusClient


def pk_pages(
    client: MilvusClient,
    collection: str,
    *,
    pk: str,
    dtype: str,
    output_fields: list[str],
    batch: int,
    partition: str | None = None,
    params: dict[str, Any] | None = None,
    stop: threading.Event | None = None,
    grammar: Grammar | None = None,
) -> Iterator[Any]:
    """Yield pages (``query`` results) of at most ``batch`` rows, in primary-key order, until none is left.

    :param client: a connected client (its database is the collection's).
    :param collection: the collection's name.
    :param pk: the primary key's name; ``dtype`` its type (``"INT64"`` or ``"VARCHAR"``).
    :param output_fields: the fields to read (``["*"]`` for all, dynamic ones included).
    :param batch: rows per page.
    :param partition: read only this partition.
    :param params: more query parameters: ``guarantee_timestamp`` for a snapshot, ``collection_id``,
        ``consistency_level``; the iterator mode is always set.
    :param stop: stop early once set.
    :param grammar: the server's expression grammar (asked from the server when not given).
    """
    grammar = grammar or grammar_of(client)
    query_params: dict[str, Any] = {
        **(params or {}),
        "limit": batch,
        "iterator": "True",
        "reduce_stop_for_best": "True",
    }
    partitions = [partition] if partition is not None else None
    last: Any = None
    while stop is None or not stop.is_set():
        expr = "" if last is None else pk_compare(pk, dtype, ">", last, grammar)
        page = client.query(
            collection, filter=expr, output_fields=output_fields, partition_names=partitions, **query_params
        )
        if len(page) == 0:
            return
        # the last row's key, read without materializing the page's vectors (list.__getitem__)
        last = list.__getitem__(page, len(page) - 1)[pk]
        yield page
