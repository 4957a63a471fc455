"""Does a data object match the manifest? One answer for ``verify_backup`` and for a restore.

A data object matches its manifest entry and its collection's captured fields when:

* its size and sha256 are the manifest's (:func:`digest_problems`; :func:`check_digest` refuses one for a
  restore);
* it is a Parquet file with the manifest's row count, exactly the columns of the collection's stored fields
  (plus ``$meta`` with a dynamic field), each of the Arrow type :func:`~.arrow.arrow_type` gives the field:
  an INT8 field is ``int8``, never ``int64``; a float vector ``list<float>``, never ``list<double>``
  (:func:`footer_problems`, from the Parquet footer alone);
* its values fit the fields (:func:`content_problems`): every vector has the values its ``dim`` needs, an
  array at most ``max_capacity`` elements, a string at most ``max_length`` characters (Unicode code
  points, as Milvus counts them), a field that is not nullable (and the primary key) no null, and the
  primary keys span the manifest's ``min_pk``..``max_pk``.

A restore reads the footer of every object before it creates anything in Milvus
(:func:`check_footers`), so a type, a row count or the dimension of a vector column without nulls that
disagrees with the manifest fails the restore before a target exists; the values are checked as each file
is downloaded, before any row of it is inserted (:func:`check_file`).

Each check takes the manifest's entries typed (:class:`~.manifest.CollectionEntry`,
:class:`~.manifest.DataFile`) or as their plain JSON; the captured fields are dicts in both.
"""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.arrow import META_FIELD, arrow_schema
from airflow_milvus_backup.engine.errors import IntegrityError, StorageNotFoundError
from airflow_milvus_backup.engine.fieldtypes import vector_width
from airflow_milvus_backup.engine.jsonmodel import value_of
from airflow_milvus_backup.engine.progress import human_bytes
from airflow_milvus_backup.engine.schema import exported_fields, primary_field

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import TypeAlias

    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_milvus_backup.engine.manifest import CollectionEntry, DataFile
    from airflow_milvus_backup.engine.storage import Storage

    #: A collection entry of the manifest, or its JSON.
    Coll: TypeAlias = CollectionEntry | Mapping[str, Any]
    #: A data file entry of the manifest, or its JSON.
    File: TypeAlias = DataFile | Mapping[str, Any]

_TAIL = 64 * 1024
_MAGIC = b"PAR1"


def _param(field: dict[str, Any], name: str) -> int | None:
    try:
        return int((field.get("params") or {})[name])
    except (KeyError, TypeError, ValueError):
        return None


def digest_problems(digest: str, size: int, f: File) -> list[str]:
    """Return how an object's sha256 and size differ from its manifest entry ``f``."""
    problems = []
    want_size, want_sha = value_of(f, "size"), value_of(f, "sha256")
    if size != want_size:
        problems.append(f"size {size} bytes, the manifest says {want_size} (truncated or replaced)")
    if digest != want_sha:
        problems.append(f"sha256 {digest[:16]}... differs from the manifest's {str(want_sha)[:16]}...")
    return problems


def check_digest(backup: str, key: str, digest: str, size: int, f: File, where: str) -> None:
    """Refuse an object whose sha256 or size is not its manifest entry's (:func:`digest_problems`' check).

    :param where: the storage's description, for the message.
    :raises IntegrityError: naming the object, both digests and both sizes.
    """
    if digest_problems(digest, size, f):
        raise IntegrityError(
            f"Data object {key!r} of backup {backup!r} in {where} does not match its manifest (sha256 "
            f"{digest[:16]}... vs {str(value_of(f, 'sha256'))[:16]}..., {human_bytes(size)} vs "
            f"{human_bytes(int(value_of(f, 'size') or 0))}): it is corrupt or was changed. None of its rows "
            "were restored; restore another backup (verify_backup checks them all)."
        )


def missing_object(backup: str, key: str, where: str) -> IntegrityError:
    """Return the error of a data object the manifest lists and the storage does not hold."""
    return IntegrityError(
        f"Data object {key!r} of backup {backup!r} is missing from {where}: the backup is damaged. Restore "
        "another backup, or run verify_backup to list every damaged object."
    )


def schema_problems(got: pa.Schema, coll: Coll) -> list[str]:
    """Return how a data file's columns and their Arrow types differ from the collection's stored fields."""
    expected = arrow_schema(exported_fields(coll), bool(value_of(coll, "enable_dynamic_field")))
    if got.names != expected.names:
        return [f"columns {got.names}, the collection's fields are {expected.names}"]
    return [
        f"column {ef.name!r} is {got.field(ef.name).type}, the field needs {ef.type}"
        for ef in expected
        if not got.field(ef.name).type.equals(ef.type)
    ]


def footer_problems(md: pq.FileMetaData, got: pa.Schema, coll: Coll, f: File) -> list[str]:
    """Return what the Parquet footer alone shows to differ from the manifest (rows, columns, types, dims)."""
    problems = []
    rows = value_of(f, "rows")
    if md.num_rows != rows:
        problems.append(f"{md.num_rows} rows, the manifest says {rows}")
    problems += schema_problems(got, coll)
    if problems:
        return problems
    paths = [md.schema.column(i).path for i in range(md.num_columns)]
    for field in exported_fields(coll):
        width = vector_width(field)
        leaf = f"{field['name']}.list.element"
        if width is None or leaf not in paths:
            continue
        i = paths.index(leaf)
        values, nulls = 0, 0
        for g in range(md.num_row_groups):
            col = md.row_group(g).column(i)
            values += col.num_values
            stats = col.statistics
            if stats is None or not stats.has_null_count:
                nulls = -1
                break
            nulls += stats.null_count
        if nulls == 0 and values != md.num_rows * width:  # (with nulls, the values are checked instead)
            per_row = values / md.num_rows if md.num_rows else 0
            problems.append(
                f"field {field['name']!r} holds {per_row:g} values a row, its dim "
                f"{(field.get('params') or {}).get('dim')} in the manifest needs {width}"
            )
    return problems


def content_problems(pf: pq.ParquetFile, coll: Coll, f: File) -> list[str]:
    """Return how the values of a data file do not fit the manifest's fields (read a batch at a time)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    fields = exported_fields(coll)
    pk = primary_field(coll)["name"]
    problems: dict[str, str] = {}
    lo: Any = None
    hi: Any = None
    for batch in pf.iter_batches(batch_size=8192, use_threads=False):
        for field in fields:
            name = field["name"]
            if name in problems or name not in batch.schema.names:
                continue
            col = batch.column(name)
            why = _column_problem(field, col, pa, pc, name == pk)
            if why:
                problems[name] = f"field {name!r}: {why}"
        keys = batch.column(pk) if pk in batch.schema.names else None
        if keys is not None and len(keys) - keys.null_count:
            mm = pc.min_max(keys)
            bl, bh = mm["min"].as_py(), mm["max"].as_py()
            lo = bl if lo is None or bl < lo else lo
            hi = bh if hi is None or bh > hi else hi
    out = list(problems.values())
    min_pk, max_pk = value_of(f, "min_pk"), value_of(f, "max_pk")
    if lo is not None and min_pk is not None and (lo != min_pk or hi != max_pk):
        out.append(f"primary keys {lo!r}..{hi!r}, the manifest says {min_pk!r}..{max_pk!r}")
    return out


def _column_problem(field: dict[str, Any], col: Any, pa: Any, pc: Any, is_pk: bool) -> str | None:
    if col.null_count and (is_pk or not field.get("nullable")) and field["name"] != META_FIELD:
        return f"{col.null_count} null value(s), the field is not nullable"
    t = field["type"]
    width = vector_width(field)
    if width is not None:
        mm = pc.min_max(pc.list_value_length(col))
        a, b = mm["min"].as_py(), mm["max"].as_py()
        if a is not None and (a != width or b != width):
            return (
                f"vectors of {a if a == b else f'{a} to {b}'} values, its dim "
                f"{(field.get('params') or {}).get('dim')} in the manifest needs {width}"
            )
    if t in ("VARCHAR", "STRING"):
        limit = _param(field, "max_length")
        longest = pc.max(pc.utf8_length(col)).as_py() if len(col) - col.null_count else None
        if limit is not None and longest is not None and longest > limit:
            return f"a string of {longest} characters, its max_length in the manifest is {limit}"
    if t == "ARRAY":
        cap = _param(field, "max_capacity")
        sizes = pc.max(pc.list_value_length(col)).as_py() if len(col) - col.null_count else None
        if cap is not None and sizes is not None and sizes > cap:
            return f"an array of {sizes} elements, its max_capacity in the manifest is {cap}"
        limit = _param(field, "max_length")
        if field.get("element_type") in ("VARCHAR", "STRING") and limit is not None:
            flat = pc.list_flatten(col)
            longest = pc.max(pc.utf8_length(flat)).as_py() if len(flat) - flat.null_count else None
            if longest is not None and longest > limit:
                return f"an element of {longest} characters, its max_length in the manifest is {limit}"
    return None


def parquet_problems(path: str, coll: Coll, f: File) -> tuple[int, list[str]]:
    """Return (rows, problems) of a local data file: footer first, then, if it is sound, its values."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path, pre_buffer=False)
        rows = pf.metadata.num_rows
    except Exception as e:  # noqa: BLE001 - any unreadable file is a finding
        return 0, [f"not a readable Parquet file ({type(e).__name__}: {e})"]
    problems = footer_problems(pf.metadata, pf.schema_arrow, coll, f)
    if not problems:
        problems = content_problems(pf, coll, f)
    return rows, problems


def _refusal(backup: str, key: str, problems: list[str], when: str) -> IntegrityError:
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return IntegrityError(
        f"Data object {key!r} of backup {backup!r} does not match its manifest: {problems[0]}{more}. "
        f"{when} Run verify_backup to list every problem, and restore another backup."
    )


def check_file(backup: str, key: str, pf: pq.ParquetFile, coll: Coll, f: File) -> None:
    """Refuse a downloaded data file that does not match the manifest, before any of its rows is inserted.

    :raises IntegrityError: naming the object, the field and what the manifest expects.
    """
    problems = footer_problems(pf.metadata, pf.schema_arrow, coll, f) or content_problems(pf, coll, f)
    if problems:
        raise _refusal(backup, key, problems, "None of its rows were restored.")


def read_footer(storage: Storage, key: str, size: int) -> tuple[pq.FileMetaData, pa.Schema]:
    """Read the Parquet footer of a stored object of ``size`` bytes with one or two range reads."""
    import io

    import pyarrow.parquet as pq

    tail = storage.get_range(key, max(0, size - _TAIL), min(size, _TAIL))
    if len(tail) < 12 or tail[-4:] != _MAGIC:
        raise ValueError("not a Parquet file (no PAR1 footer)")
    (length,) = struct.unpack("<I", tail[-8:-4])
    if length + 8 > len(tail):
        if length + 12 > size:
            raise ValueError("not a Parquet file (footer longer than the object)")
        tail = storage.get_range(key, size - length - 8, length + 8)
    footer = tail[-(length + 8) :]
    md = pq.read_metadata(io.BytesIO(_MAGIC + footer))
    return md, md.schema.to_arrow_schema()


def check_footers(
    storage: Storage, backup: str, files: list[tuple[CollectionEntry, DataFile]], parallelism: int = 4
) -> None:
    """Refuse a backup whose data objects' footers disagree with the manifest, before anything is created.

    :param files: ``(collection entry, file entry)`` of every object the restore will read.
    :raises IntegrityError: naming the first object, the field and what the manifest expects.
    """

    def check(item: tuple[CollectionEntry, DataFile]) -> list[str]:
        coll, f = item
        key = f"{backup}/{f.key}"
        try:
            md, schema = read_footer(storage, key, f.size)
        except StorageNotFoundError:
            return [key, "the object does not exist"]
        except Exception as e:  # noqa: BLE001 - any unreadable footer is a finding
            return [key, f"not a readable Parquet file ({type(e).__name__}: {e})"]
        return [key, *footer_problems(md, schema, coll, f)]

    with ThreadPoolExecutor(max(1, parallelism), thread_name_prefix="footers") as pool:
        for key, *problems in pool.map(check, files):
            if problems:
                raise _refusal(backup, key, problems, "Nothing was restored.")


# ------------------------------------------------------------------------------------------------ targets
_JSON_KINDS = {"{": "object", "[": "array", '"': "string", "t": "bool", "f": "bool", "n": "null"}
ALL_JSON_KINDS = frozenset({"object", "array", "string", "number", "bool", "null"})


def json_kind(text: str) -> str:
    """Return what a JSON document is: object, array, string, number, bool or null."""
    return _JSON_KINDS.get(text.lstrip()[:1], "number")


def json_kinds_stored(lite: bool, version: tuple[int, int, int] | None) -> frozenset[str]:
    """Return the kinds of JSON document a server stores in a JSON field (as tried on the real servers).

    Milvus 2.3 takes only objects (and ``null``); Milvus Lite refuses a bare number or bool (and returns a
    string without its quotes, which a backup turns back into that string); newer servers are not limited
    here (the server itself refuses what it cannot store).
    """
    if lite:
        return frozenset({"object", "array", "string", "null"})
    if version is not None and version[:2] < (2, 4):
        return frozenset({"object", "null"})
    return ALL_JSON_KINDS


def check_json_kinds(
    pf: pq.ParquetFile, coll: Coll, key: str, kinds: frozenset[str], server: str, target: str
) -> None:
    """Refuse a data file with a JSON document the target server cannot store, naming field and row key.

    :param kinds: what :func:`json_kinds_stored` says the target stores.
    :param server: the target server's label, for the message.
    :raises UnsupportedError: before any row of the file is inserted.
    """
    from airflow_milvus_backup.engine.errors import UnsupportedError

    names = [f["name"] for f in exported_fields(coll) if f["type"] == "JSON"]
    if kinds >= ALL_JSON_KINDS or not names:
        return
    pk = primary_field(coll)["name"]
    source = f"{value_of(coll, 'db_name')}.{value_of(coll, 'name')}"
    for batch in pf.iter_batches(batch_size=8192, columns=[pk, *names], use_threads=False):
        keys = batch.column(pk).to_pylist()
        for name in names:
            for i, text in enumerate(batch.column(name).to_pylist()):
                kind = "null" if text is None else json_kind(text)
                if kind not in kinds:
                    raise UnsupportedError(
                        f"Field {name!r} of {source} holds a JSON {kind} "
                        f"({str(text)[:60]!r}) in the row with {pk}={keys[i]!r} (data object {key!r}); "
                        f"{server} stores only JSON {', '.join(sorted(kinds))} documents in a JSON field, so "
                        f"{target} cannot hold it. Restore this collection to a server that stores such "
                        "documents (Milvus Lite or Milvus 2.4+), or restore the other collections."
                    )
