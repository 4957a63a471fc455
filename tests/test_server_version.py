"""A server without GetVersion is taken for Milvus 2.5.0; one without partitions, aliases or databases APIs
for a server with the least of them. The decisions, without servers (the real one: test_milvus25_*.py)."""

from __future__ import annotations

import logging

import pytest
from pymilvus.exceptions import MilvusException

from airflow_milvus_backup.engine import server_api
from airflow_milvus_backup.engine.client import server_version
from airflow_milvus_backup.engine.errors import UnsupportedError
from airflow_milvus_backup.engine.manifest import CollectionEntry, Manifest
from airflow_milvus_backup.engine.restore.capabilities import (
    ServerInfo,
    apis_needed,
    check_apis,
    version_numbers,
)
from airflow_milvus_backup.engine.restore.options import RestoreOptions

UNIMPLEMENTED = "<_InactiveRpcError of RPC that terminated with: status = StatusCode.UNIMPLEMENTED>"


class _Client:
    """Answers like a server: a version, or the error given (pure data, no I/O)."""

    def __init__(self, error: Exception | None, version: str = "v2.3.5") -> None:
        self.error, self.version = error, version

    def get_server_version(self) -> str:
        if self.error:
            raise self.error
        return self.version

    def _answer(self, value: object) -> object:
        if self.error:
            raise self.error
        return value

    def list_partitions(self, name: str) -> object:
        return self._answer(["_default", "p1"])

    def list_aliases(self, name: str = "") -> object:
        return self._answer({"aliases": ["a1"]})

    def list_databases(self) -> object:
        return self._answer(["default", "db1"])

    def alter_collection_properties(self, name: str, props: dict[str, str]) -> object:
        return self._answer(None)


def _entry(**kw: object) -> CollectionEntry:
    """Return a manifest's collection entry ``default.c`` (read as a restore reads it)."""
    coll = {
        "name": "c",
        "db_name": "default",
        "auto_id": False,
        "enable_dynamic_field": False,
        "fields": [{"name": "id", "type": "INT64", "description": "", "params": {}, "is_primary": True}],
        "row_count": 0,
        "data": [],
        **kw,
    }
    doc = {
        "format": "airflow-milvus-backup",
        "format_version": 1,
        "name": "b1",
        "id": "i",
        "state": "complete",
    }
    return Manifest.from_json({**doc, "databases": {}, "collections": [coll]}, "b1").collections[0]


def test_unimplemented_get_version_is_assumed_2_5_0_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    error = MilvusException(message=UNIMPLEMENTED)
    with caplog.at_level(logging.WARNING):
        version = server_version(_Client(error), "127.0.0.1:19530")  # type: ignore[arg-type]
        server_version(_Client(error), "127.0.0.1:19530")  # type: ignore[arg-type]
    assert version == ""
    assert caplog.text.count("Milvus at 127.0.0.1:19530 does not implement GetVersion") == 1
    assert "assuming it is Milvus 2.5.0" in caplog.text
    server = ServerInfo.detect(version)
    assert (server.numbers, server.assumed, server.lite) == ((2, 5, 0), True, False)
    assert server.label == "Milvus (version not reported, assumed 2.5.0)"
    # 2.5's fields are allowed by version; 2.6's explicit keys in an auto_id collection are not assumed
    assert server.at_least(2, 5)
    assert not server.at_least(2, 6)
    assert not server.keeps_auto_id
    assert server.field_problem({"name": "t", "type": "VARCHAR", "is_function_output": True}) is None
    assert (
        server.field_problem({"name": "v", "type": "INT8_VECTOR"})
        == "INT8_VECTOR fields need Milvus 2.6 or newer"
    )


def test_version_numbers_are_read_or_assumed() -> None:
    assert version_numbers("v2.3.5") == ((2, 3, 5), False)
    assert version_numbers("2.6.1-gpu") == ((2, 6, 1), False)
    assert version_numbers("") == ((2, 5, 0), True)
    assert version_numbers("a server") == ((2, 5, 0), True)
    assert ServerInfo.detect("a server").label == "Milvus (version 'a server' not readable, assumed 2.5.0)"
    assert ServerInfo.detect("2.6.0").keeps_auto_id
    assert not ServerInfo.detect("2.6.0", lacks={server_api.PROPERTIES}).keeps_auto_id
    lite = ServerInfo.detect("", lite_uri=True)  # embedded Milvus Lite counts as newest
    assert lite.numbers is None
    assert lite.keeps_auto_id
    assert not lite.assumed


def test_other_errors_are_not_swallowed_and_versions_pass_through() -> None:
    assert server_version(_Client(None, "v2.3.5"), "a") == "v2.3.5"  # type: ignore[arg-type]
    with pytest.raises(MilvusException, match="UNAVAILABLE"):
        server_version(_Client(MilvusException(message="UNAVAILABLE")), "a")  # type: ignore[arg-type]


def test_readers_fall_back_only_on_unimplemented(caplog: pytest.LogCaptureFixture) -> None:
    lacking = _Client(MilvusException(message=UNIMPLEMENTED))
    with caplog.at_level(logging.WARNING):
        assert server_api.list_partitions(lacking, "c", "h:1") == ["_default"]  # type: ignore[arg-type]
        assert server_api.list_aliases(lacking, "h:1", "c") == []  # type: ignore[arg-type]
        assert server_api.list_databases(lacking, "h:1") == ["default"]  # type: ignore[arg-type]
        assert server_api.list_partitions(lacking, "d", "h:1") == ["_default"]  # type: ignore[arg-type]
    assert caplog.text.count("does not implement ShowPartitions") == 1  # once per address and API
    assert "assuming every collection has only the _default partition" in caplog.text
    assert "assuming there is only the default database" in caplog.text
    full = _Client(None)
    assert server_api.list_partitions(full, "c", "h:1") == ["_default", "p1"]  # type: ignore[arg-type]
    assert server_api.list_aliases(full, "h:1", "c") == ["a1"]  # type: ignore[arg-type]
    with pytest.raises(MilvusException, match="collection not found"):
        server_api.list_partitions(  # type: ignore[arg-type]
            _Client(MilvusException(message="collection not found")), "c", "h:1"
        )


def test_lacking_probes_say_which_apis_are_missing() -> None:
    lacking = _Client(MilvusException(message=UNIMPLEMENTED))
    every = [server_api.PARTITIONS, server_api.ALIASES, server_api.DATABASES, server_api.PROPERTIES]
    assert server_api.lacking(lacking, "h:2", every) == frozenset(every)  # type: ignore[arg-type]
    assert server_api.lacking(_Client(None), "h:2", every) == frozenset()  # type: ignore[arg-type]
    # the partitions and properties probes ask of an absent collection: "not found" means the API is there
    absent = _Client(MilvusException(message="collection not found[collection=amb_probe]"))
    assert server_api.lacking(absent, "h:2", [server_api.PARTITIONS]) == frozenset()  # type: ignore[arg-type]
    with pytest.raises(MilvusException):
        server_api.lacking(absent, "h:2", [server_api.DATABASES])  # type: ignore[arg-type]


def test_a_restore_that_needs_a_missing_api_is_refused_with_the_fix() -> None:
    server = ServerInfo.detect("", lacks={server_api.PARTITIONS, server_api.DATABASES, server_api.PROPERTIES})
    parts = _entry(partitions=["_default", "p1"])
    with pytest.raises(UnsupportedError, match=r"default\.c has partitions p1 besides _default, but Milvus "):
        check_apis(parts, "default", server, "h:3")
    with pytest.raises(UnsupportedError, match=r"into database 'db1'.*has no databases API.*target_db_name"):
        check_apis(_entry(), "db1", server, "h:3")
    with pytest.raises(UnsupportedError, match=r"collection properties \['ttl'\].*no properties API"):
        check_apis(_entry(properties={"ttl": "5"}), "default", server, "h:3")
    # a partition-key collection's partitions are the server's own; aliases are skipped, not refused
    keyed = _entry(
        partitions=["_default_0", "_default_1"],
        aliases=["a"],
        fields=[
            {"name": "id", "type": "INT64", "description": "", "is_primary": True, "params": {}},
            {"name": "k", "type": "INT64", "description": "", "is_partition_key": True, "params": {}},
        ],
    )
    check_apis(
        keyed, "default", ServerInfo.detect("", lacks={server_api.ALIASES, server_api.PARTITIONS}), "h"
    )
    check_apis(parts, "db1", ServerInfo.detect("v2.5.4"), "h:3")  # nothing lacking: nothing refused


def test_apis_needed_asks_only_for_what_the_selection_uses() -> None:
    opts = RestoreOptions()
    assert apis_needed([(_entry(), "default")], opts) == frozenset()
    needed = apis_needed(
        [(_entry(partitions=["_default", "p"], aliases=["a"], properties={"x": "1"}), "d")], opts
    )
    assert needed == {server_api.PARTITIONS, server_api.ALIASES, server_api.PROPERTIES, server_api.DATABASES}
    assert server_api.ALIASES not in apis_needed(
        [(_entry(aliases=["a"]), "default")], RestoreOptions(restore_aliases=False)
    )
