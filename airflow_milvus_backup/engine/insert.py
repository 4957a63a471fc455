"""Insert Arrow record batches into a collection, column by column.

``MilvusClient.insert`` takes rows of Python values and packs every value into the request one by one: for
100k rows of 768-d vectors, a title and a JSON document that is about 9 CPU-s, more than Milvus 2.3.5 spends
storing them. :class:`BatchInserter` builds the request from the Arrow columns instead:

- a FLOAT_VECTOR column becomes one packed protobuf ``FloatArray`` parsed from the column's buffer (one copy,
  no Python float per value);
- BOOL, INT8..INT64, FLOAT, DOUBLE, VARCHAR and JSON columns that are not nullable and have no default value
  are extended into their repeated fields in one call each; the dynamic field (``$meta``) is sent as the
  stored JSON text;
- every other field (arrays, sparse and byte vectors, nullable fields, structs, a batch whose column does
  not fit) is packed by pymilvus from rows, as ``MilvusClient.insert`` would, with its checks.

This uses pymilvus internals (the connection's gRPC stub, ``Prepare.row_insert_param``, ``check_status``).
Where they are missing the batch goes through ``MilvusClient.insert`` instead, with the same result.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.arrow import META_FIELD, table_to_rows

if TYPE_CHECKING:
    import pyarrow as pa
    from pymilvus import MilvusClient

log = logging.getLogger("airflow_milvus_backup.engine.insert")

# schema.proto DataType -> the ScalarField member of its values
_SCALAR_SLOTS = {
    1: "bool_data",  # Bool
    2: "int_data",  # Int8
    3: "int_data",  # Int16
    4: "int_data",  # Int32
    5: "long_data",  # Int64
    10: "float_data",  # Float
    11: "double_data",  # Double
    20: "string_data",  # String
    21: "string_data",  # VarChar
}
_JSON = 23
_FLOAT_VECTOR = 101


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if not n:
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def _float_vector_bytes(dim: int, column: pa.ChunkedArray | pa.Array) -> bytes | None:
    """Return the serialized ``VectorField`` of ``column``, or ``None`` if it cannot be copied as bytes.

    The column must hold ``dim`` float32 values in every row and no null row.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    if arr.null_count or not (pa.types.is_list(arr.type) or pa.types.is_fixed_size_list(arr.type)):
        return None
    if n and pa.types.is_list(arr.type):
        lengths = pc.min_max(pc.list_value_length(arr))
        if lengths["min"].as_py() != dim or lengths["max"].as_py() != dim:
            return None
    flat = arr.flatten()
    if len(flat) != n * dim or flat.null_count or not pa.types.is_float32(flat.type):
        return None
    raw = memoryview(flat.to_numpy(zero_copy_only=False).astype("<f4", copy=False)).cast("B")
    # VectorField {int64 dim = 1; FloatArray float_vector = 2 {repeated float data = 1 [packed]}}
    floats_len = 1 + len(_varint(len(raw))) + len(raw)
    return b"".join((b"\x08", _varint(dim), b"\x12", _varint(floats_len), b"\x0a", _varint(len(raw)), raw))


def _scalar_values(dtype: int, column: pa.ChunkedArray) -> list[Any] | None:
    """Return the values of a scalar column as the protobuf field takes them, or ``None``."""
    import pyarrow as pa

    if column.null_count:
        return None
    t = column.type
    if dtype == _JSON:
        if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            return None
        return [s.encode() for s in column.to_pylist()]
    if dtype in (20, 21):
        return column.to_pylist() if pa.types.is_string(t) or pa.types.is_large_string(t) else None
    if dtype == 1:
        return column.to_pylist() if pa.types.is_boolean(t) else None
    if dtype in (10, 11):
        return column.to_pylist() if pa.types.is_floating(t) else None
    return column.to_pylist() if pa.types.is_integer(t) else None


def _meta_values(table: pa.Table) -> list[bytes]:
    """Return the dynamic field's JSON object of each row (``{}`` where the row has none)."""
    if META_FIELD not in table.column_names:
        return [b"{}"] * table.num_rows
    return [s.encode() if s else b"{}" for s in table.column(META_FIELD).to_pylist()]


def _has_dynamic_values(table: pa.Table) -> bool:
    if META_FIELD not in table.column_names:
        return False
    return any(s and s != "{}" for s in table.column(META_FIELD).to_pylist())


@dataclass(frozen=True)
class _Columnar:
    """What building requests column by column needs: the connection and the target's schema."""

    conn: Any
    context: Any
    fields: list[dict[str, Any]]
    dynamic: bool
    schema_timestamp: int
    #: keyword arguments of ``Prepare.row_insert_param`` this pymilvus takes
    options: dict[str, Any]


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
        self._fast: _Columnar | None = None
        #: the fields of the last request that were built column-wise (the rest were packed by pymilvus)
        self.columnar: list[str] = []
        try:
            self._fast = self._prepare()
        except Exception as e:  # noqa: BLE001 - any surprise in pymilvus internals means the public path
            log.warning(
                "Inserting into %s through MilvusClient.insert: this pymilvus lacks what the columnar "
                "path uses (%s: %s)",
                collection,
                type(e).__name__,
                e,
            )

    @property
    def fast(self) -> bool:
        """Return whether requests are built column by column."""
        return self._fast is not None

    def _prepare(self) -> _Columnar:
        from pymilvus.client.prepare import Prepare

        conn = self.client._get_connection()
        context = self.client._generate_call_context()
        schema = conn.describe_collection(self.collection, context=context)
        schema_timestamp = int(schema.get("update_timestamp", 0) or 0)
        options = {
            "struct_fields_info": schema.get("struct_array_fields", []),
            "schema_timestamp": schema_timestamp,
            "enable_dynamic": False,  # the dynamic field is always sent column-wise
        }
        accepted = inspect.signature(Prepare.row_insert_param).parameters
        return _Columnar(
            conn=conn,
            context=context,
            fields=list(schema["fields"]),
            dynamic=bool(schema.get("enable_dynamic_field", False)),
            schema_timestamp=schema_timestamp,
            options={k: v for k, v in options.items() if k in accepted},
        )

    def insert(self, table: pa.Table, partition: str | None) -> int:
        """Insert every row of ``table`` (into ``partition`` if given) in one request; return the rows."""
        n = table.num_rows
        if not n:
            return 0
        fast = self._fast
        if fast is None or (not fast.dynamic and _has_dynamic_values(table)):
            # (dynamic values for a collection without a dynamic field: pymilvus names the problem)
            rows = table_to_rows(table, self.fields, skip=self.skip)
            self.client.insert(self.collection, rows, partition_name=partition or "")
        else:
            self._send(fast, self._request(fast, table, partition or ""))
        return n

    def _column(self, f: dict[str, Any], table: pa.Table) -> bytes | list[Any] | None:
        """Return a field's values ready for its protobuf slot, or ``None`` to leave it to pymilvus."""
        name, dtype = f["name"], int(f["type"])
        if f.get("nullable") or f.get("is_function_output") or f.get("default_value") is not None:
            return None
        if name not in table.column_names or name in self.skip:
            return None
        if dtype == _FLOAT_VECTOR:
            dim = int(f.get("params", {}).get("dim", 0))
            return _float_vector_bytes(dim, table.column(name)) if dim > 0 else None
        if dtype in _SCALAR_SLOTS or dtype == _JSON:
            return _scalar_values(dtype, table.column(name))
        return None

    def _request(self, fast: _Columnar, table: pa.Table, partition: str) -> Any:
        from pymilvus.client.prepare import Prepare
        from pymilvus.grpc_gen import milvus_pb2

        columns: list[tuple[str, int, bytes | list[Any]]] = []
        rest: list[dict[str, Any]] = []
        for f in fast.fields:
            value = self._column(f, table)
            if value is None:
                rest.append(f)
            else:
                columns.append((f["name"], int(f["type"]), value))
        self.columnar = [name for name, _, _ in columns]
        if rest:
            # pymilvus packs (and checks) the rest from rows, as MilvusClient.insert would
            done = {*self.columnar, META_FIELD}
            packed = table.drop_columns([c for c in table.column_names if c in done])
            rows = table_to_rows(packed, self.fields, skip=self.skip, json_text=True)
            request = Prepare.row_insert_param(self.collection, rows, partition, rest, **fast.options)
        else:
            request = milvus_pb2.InsertRequest(
                collection_name=self.collection,
                partition_name=partition,
                num_rows=table.num_rows,
                schema_timestamp=fast.schema_timestamp,
            )
        for name, dtype, value in columns:
            fd = request.fields_data.add(field_name=name, type=dtype)
            if isinstance(value, bytes):
                fd.vectors.MergeFromString(value)
            elif dtype == _JSON:
                fd.scalars.json_data.data.extend(value)
            else:
                getattr(fd.scalars, _SCALAR_SLOTS[dtype]).data.extend(value)
        if fast.dynamic:
            fd = request.fields_data.add(field_name=META_FIELD, type=_JSON, is_dynamic=True)
            fd.scalars.json_data.data.extend(_meta_values(table))
        return request

    def _send(self, fast: _Columnar, request: Any) -> None:
        import grpc
        from pymilvus.client.call_context import _api_level_md
        from pymilvus.client.utils import check_status
        from pymilvus.exceptions import MilvusException

        try:
            resp = fast.conn._stub.Insert(request=request, metadata=_api_level_md(fast.context))
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
                self.collection, resp.timestamp, fast.conn.server_address, fast.context.get_db_name()
            )
        except (ImportError, AttributeError, TypeError):
            pass
