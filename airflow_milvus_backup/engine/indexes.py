"""Build indexes and wait for them without calls the server lacks.

pymilvus' ``create_index`` waits for the build by first asking the server for a timestamp
(``AllocTimestamp``). Milvus Lite does not implement it: each index of a restore logged "Exception calling
application: Method not implemented!" with a traceback (from Lite's gRPC server, in this process) before
pymilvus ignored the error. On Milvus Lite the index is created without pymilvus' wait, and this module
waits by reading the index's state.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pymilvus import MilvusClient
    from pymilvus.milvus_client.index import IndexParams

#: Seconds between two reads of an index's state while it builds.
POLL_SECONDS = (0.05, 0.2, 0.5, 1.0)


def index_state(info: dict[str, Any] | None) -> str:
    """Return ``done``, ``failed`` or ``building`` for what ``describe_index`` returned.

    :param info: ``describe_index``'s answer (``None``: the index is not visible yet).
    """
    state = str((info or {}).get("state") or "")
    if state == "Finished":
        return "done"
    if state == "Failed":
        return "failed"
    return "building"


def create_index(
    client: MilvusClient,
    collection: str,
    index_params: IndexParams,
    *,
    lite: bool,
    timeout: float = 3600.0,
) -> None:
    """Create the indexes of ``index_params`` on ``collection`` and wait until they are built.

    :param client: the client of the collection's database.
    :param collection: the collection.
    :param index_params: from ``client.prepare_index_params()``.
    :param lite: the server is Milvus Lite (no ``AllocTimestamp``): wait here instead of in pymilvus.
    :param timeout: seconds to wait for the builds.
    :raises MilvusException: an index failed to build, or did not finish in ``timeout``.
    """
    if not lite:
        client.create_index(collection, index_params)
        return
    from pymilvus.exceptions import MilvusException

    client.create_index(collection, index_params, sync=False)
    deadline = time.monotonic() + timeout
    for param in index_params:
        name = param.index_name or param.field_name
        what = f"index {name!r} on {param.field_name!r}"
        for attempt in range(1_000_000):
            state = index_state(_describe(client, collection, name, param.field_name))
            if state == "done":
                break
            if state == "failed":
                raise MilvusException(message=f"{what} failed to build")
            if time.monotonic() > deadline:
                raise MilvusException(message=f"{what} not built in {timeout:g} s")
            time.sleep(POLL_SECONDS[min(attempt, len(POLL_SECONDS) - 1)])


def _describe(client: MilvusClient, collection: str, name: str, field_name: str) -> dict[str, Any] | None:
    """Return ``describe_index`` of the index by its name, else by its field's name (how Lite names it).

    Milvus Lite answers an index name it does not know with the error "There are multiple indexes" when the
    collection has several: that means "not under this name", so the field's name is tried next.
    """
    from pymilvus.exceptions import MilvusException

    for candidate in dict.fromkeys((name, field_name)):
        try:
            info = client.describe_index(collection, candidate)
        except MilvusException:
            if candidate == field_name:
                raise
            continue
        if info is not None:
            return info
    return None
