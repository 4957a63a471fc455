"""Insert Arrow record batches into a collection, float vectors copied as raw bytes.

``MilvusClient.insert`` takes rows of Python values and packs every vector value into the request one by one:
for 768-d vectors that is about 6 CPU-s per 100k rows, most of a restore's CPU. :class:`BatchInserter` lets
pymilvus build the request for every field but the float vectors (so dynamic fields, nullable and default
values, JSON, arrays and key rules keep pymilvus' own encoding and checks) and adds each FLOAT_VECTOR column
as one packed protobuf ``FloatArray`` parsed from the column's buffer: one copy, no Python float per value.

This uses pymilvus internals (the connection's gRPC stub, ``Prepare.row_insert_param``, ``check_status``).
Where they are missing, or a batch cannot take the fast path (a vector column with nulls or rows of the wrong
length), the batch goes through ``MilvusClient.insert`` instead, with the same result.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.arrow import table_to_rows

if TYPE_CHECKING:
    import pyarrow as pa
    from pymilvus import MilvusClient

log = logging.getLogger("airflow_milvus_backup.engine.insert")

_FLOAT_VECTOR = 101  # schema.proto DataType.FloatVector
_OPTIONAL_PARAMS = ("struct_fields_info", "schema_timestamp", "enable_dynamic")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if not n:
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def float_vector_field(name: str, dim: int, column: pa.ChunkedArray | pa.Array) -> Any | None:
    """Return a ``FieldData`` of ``column``'s float vectors, or ``None`` if it cannot be copied as bytes.

    The column must hold ``dim`` float32 values in every row and no null row.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from pymilvus.grpc_gen import schema_pb2

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    if arr.null_count or not (pa.types.is_list(arr.type) or pa.types.is_fixed_size_list(arr.type)):
        return None
    if n and pa.types.is_list(arr.type):
        lengths = pc.min_max(pc.list_value_length(arr))
        if lengths["min"].as_py() != dim or lengths["max"].as_py() != dim:
            return None
    flat = arr.flatten()
    if len(flat) != n * dim or flat.null_count:
        return None
    raw = flat.to_numpy(zero_copy_only=False).astype("<f4", copy=False).tobytes()
    # VectorField {dim = 1; float_vector = 2 (FloatArray {repeated float data = 1 [packed]})}
    floats = b"\x0a" + _varint(len(raw)) + raw
    vectors = b"\x08" + _varint(dim) + b"\x12" + _varint(len(floats)) + floats
    fd = schema_pb2.FieldData(field_name=name, type=_FLOAT_VECTOR)
    fd.vectors.MergeFromString(vectors)
    return fd


class BatchInserter:
    """Insert Arrow tables (a data file's record batches) into one collection.

    :param client: a client connected to the collection's database.
    :param collection: the collection's name.
    :param fields: the backup's exported fields of the collection (``schema.exported_fields``).
    :param skip: field names not to insert (an auto_id key when new keys are generated).
    """

    def __init__(
        self, client: MilvusClient, collection: str, fields: list[dict[str, Any]], skip: set[str]
    ) -> None:
        self.client = client
        self.collection = collection
        self.fields = fields
        self.skip = set(skip)
        self._fast: dict[str, Any] | None = None
        self._fast_error: str | None = None
        try:
            self._fast = self._prepare()
        except Exception as e:  # noqa: BLE001 - any surprise in pymilvus internals means the public path
            self._fast_error = f"{type(e).__name__}: {e}"
        if self._fast is None:
            log.debug(
                "Inserting into %s through MilvusClient.insert (%s)",
                collection,
                self._fast_error or "no float vector field",
            )

    @property
    def fast(self) -> bool:
        """Return whether float vectors go into requests as raw bytes."""
        return self._fast is not None

    def _prepare(self) -> dict[str, Any] | None:
        from pymilvus.client.prepare import Prepare

        conn = self.client._get_connection()
        context = self.client._generate_call_context()
        schema = conn.describe_collection(self.collection, context=context)
        vectors = {
            f["name"]: int(f.get("params", {}).get("dim", 0))
            for f in schema.get("fields", [])
            if int(f["type"]) == _FLOAT_VECTOR and not f.get("nullable") and f["name"] not in self.skip
        }
        if not vectors or any(d <= 0 for d in vectors.values()):
            return None
        params = inspect.signature(Prepare.row_insert_param).parameters
        options: dict[str, Any] = {
            "struct_fields_info": schema.get("struct_array_fields", []),
            "schema_timestamp": schema.get("update_timestamp", 0),
            "enable_dynamic": bool(schema.get("enable_dynamic_field", False)),
        }
        return {
            "conn": conn,
            "context": context,
            "vectors": vectors,
            "fields_info": [f for f in schema["fields"] if f["name"] not in vectors],
            "options": {k: v for k, v in options.items() if k in params},
            "build": Prepare.row_insert_param,
        }

    def insert(self, table: pa.Table, partition: str | None) -> int:
        """Insert every row of ``table`` (into ``partition`` if given) in one request; return the rows."""
        n = table.num_rows
        if not n:
            return 0
        fast = self._fast
        if fast is not None:
            columns = []
            for name, dim in fast["vectors"].items():
                fd = float_vector_field(name, dim, table.column(name)) if name in table.column_names else None
                if fd is None:
                    break
                columns.append(fd)
            else:
                self._send(fast, table, columns, partition)
                return n
        rows = table_to_rows(table, self.fields, skip=self.skip)
        self.client.insert(self.collection, rows, partition_name=partition or "")
        return n

    def _send(self, fast: dict[str, Any], table: pa.Table, vectors: list[Any], partition: str | None) -> None:
        import grpc
        from pymilvus.client.call_context import _api_level_md
        from pymilvus.client.utils import check_status
        from pymilvus.exceptions import MilvusException

        rows = table_to_rows(table, self.fields, skip=self.skip | set(fast["vectors"]))
        build, options = fast["build"], fast["options"]
        request = build(self.collection, rows, partition or "", fast["fields_info"], **options)
        request.fields_data.extend(vectors)
        conn = fast["conn"]
        try:
            resp = conn._stub.Insert(request=request, metadata=_api_level_md(fast["context"]))
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else None
            details = e.details() if hasattr(e, "details") else str(e)
            name = code.name if code is not None else "RPC error"
            raise MilvusException(
                code=code.value[0] if code is not None else -1, message=f"{name}: {details}"
            ) from e
        check_status(resp.status)
        try:  # session consistency: later reads in this process wait for this write
            from pymilvus.client import ts_utils

            ts_utils.update_collection_ts(
                self.collection, resp.timestamp, conn.server_address, fast["context"].get_db_name()
            )
        except (ImportError, AttributeError, TypeError):
            pass
