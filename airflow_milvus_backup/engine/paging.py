"""Read a collection (or one partition) page by page in primary-key order, whatever the keys hold.

pymilvus' ``query_iterator`` builds its cursor as ``pk > "<last>"`` without escaping (a key with a quote, a
backslash or a line break fails to parse or skips rows) and starts an INT64 iteration with
``pk < 9223372036854775807`` (the row with the largest key is never read). :func:`pk_pages` sends the same
requests (the server's iterator mode returns each page sorted by primary key) with the cursor built by
:mod:`~airflow_milvus_backup.engine.filters`.

A server that rejects the cursor filter itself (Milvus Lite 2.5.1 answers "Invalid expr" to every filter on a
partition-key collection, :func:`~airflow_milvus_backup.engine.server_api.rejects_filter`) is read by offset
instead: the pages without a filter, sorted by primary key, up to Milvus' query window
(:data:`QUERY_WINDOW` rows). A collection with more rows than that cannot be read there, and is refused
with the fix (:func:`offset_plan`); rows are never skipped silently (the keys must keep rising).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import server_api
from airflow_milvus_backup.engine.errors import UnsupportedError
from airflow_milvus_backup.engine.filters import Grammar, grammar_of, pk_compare

if TYPE_CHECKING:
    from pymilvus import MilvusClient

log = logging.getLogger(__name__)

#: At most this many rows are reachable by a query without a filter (offset + limit; Milvus'
#: ``quotaAndLimits.limits.maxQueryResultWindow``, 16384 by default and in Milvus Lite 2.5.1).
QUERY_WINDOW = 16384


def offset_plan(collection: str, partition: str | None, total: int, window: int, why: str) -> int:
    """Return how many rows to read by offset, or raise when ``total`` rows are beyond the query window.

    :param collection: the collection (for the message).
    :param partition: the partition read, if one.
    :param total: the rows the server counts in it.
    :param window: the most rows a query without a filter reaches (:data:`QUERY_WINDOW`).
    :param why: the server's answer to the cursor filter.
    """
    if total <= window:
        return total
    where = f"partition {partition!r} of {collection!r}" if partition else repr(collection)
    raise UnsupportedError(
        f"Cannot read {where}: the server rejects every filter on it ({why}), and without a filter a query "
        f"reaches only its first {window} of {total} rows. Milvus Lite 2.5.1 does this for a collection "
        "with a partition key. Back the collection up from a Milvus standalone or cluster that holds the "
        "same data (or from a copy of it without the partition key)."
    )


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
    read = 0
    end: int | None = None  # set when reading by offset: the rows there are
    while stop is None or not stop.is_set():
        expr = "" if last is None or end is not None else pk_compare(pk, dtype, ">", last, grammar)
        extra: dict[str, Any] = {}
        if end is not None:
            if read >= end:
                return
            extra = {"offset": read, "limit": min(batch, end - read)}
        try:
            page = client.query(
                collection,
                filter=expr,
                output_fields=output_fields,
                partition_names=partitions,
                **{**query_params, **extra},
            )
        except Exception as e:
            if not expr or not server_api.rejects_filter(e):
                raise
            end = _by_offset(client, collection, partitions, params, e)
            continue
        if len(page) == 0:
            return
        # the first and last rows' keys, read without materializing the page's vectors (list.__getitem__)
        first = list.__getitem__(page, 0)[pk]
        if end is not None and not first > last:
            raise UnsupportedError(
                f"Reading {collection!r} by offset (its server rejects filters on it) met key {first!r} "
                f"after {last!r}: its pages are not in key order, so rows could be missed. Back it up "
                "from a Milvus standalone or cluster."
            )
        last = list.__getitem__(page, len(page) - 1)[pk]
        read += len(page)
        yield page


def _by_offset(
    client: MilvusClient,
    collection: str,
    partitions: list[str] | None,
    params: dict[str, Any] | None,
    error: Exception,
) -> int:
    """Count the rows to read by offset (the server rejected the cursor filter: ``error``)."""
    why = str(getattr(error, "message", None) or error)
    count_params = {k: v for k, v in (params or {}).items() if k != "collection_id"}
    res = client.query(
        collection, filter="", output_fields=["count(*)"], partition_names=partitions, **count_params
    )
    total = int(res[0]["count(*)"]) if res else 0
    partition = partitions[0] if partitions else None
    end = offset_plan(collection, partition, total, QUERY_WINDOW, why)
    log.warning(
        "The server rejects the key filter on %s (%s): reading its %d rows by offset instead",
        collection,
        why,
        end,
    )
    return end
