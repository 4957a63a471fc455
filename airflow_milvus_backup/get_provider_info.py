"""Provider metadata, read by Airflow through the ``apache_airflow_provider`` entry point.

Since Airflow 3.2 the connection form is declared here (``conn-fields``, ``ui-field-behaviour``) rather than
in hook methods: the UI reads it without importing the hook.
"""

from __future__ import annotations

from typing import Any

_INTEGRATION = "Milvus Backup"

#: Extra fields of a ``milvus`` connection (stored unprefixed in the connection's extra).
MILVUS_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "uri": {
        "label": "URI",
        "description": "Full Milvus URI; overrides Host and Port. http(s)://host:19530, a Zilliz Cloud "
        "endpoint, or the path of a Milvus Lite .db file. Empty: Host and Port.",
        # Airflow 3.3's form shows no placeholder for an extra field; examples are offered as suggestions
        "schema": {"type": ["string", "null"], "examples": ["http://localhost:19530"]},
    },
    "token": {
        "label": "Token",
        "description": "API key (Zilliz Cloud) or 'user:password'. Use instead of User and Password.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "secure": {
        "label": "Use TLS",
        "description": "Connect with TLS (https). Implied by an https:// URI.",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "server_name": {
        "label": "TLS server name",
        "description": "The server name to expect in Milvus' certificate (SNI), if not the host.",
        "schema": {"type": ["string", "null"]},
    },
    "server_pem_path": {
        "label": "CA certificate path",
        "description": "Path, on the worker, of the CA (or server) certificate that signs Milvus' "
        "certificate.",
        "schema": {"type": ["string", "null"], "examples": ["/etc/milvus/tls/ca.pem"]},
    },
    "client_pem_path": {
        "label": "Client certificate path",
        "description": "Mutual TLS: path of the client certificate.",
        "schema": {"type": ["string", "null"]},
    },
    "client_key_path": {
        "label": "Client key path",
        "description": "Mutual TLS: path of the client's private key.",
        "schema": {"type": ["string", "null"]},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Seconds for connecting and for each call.",
        "schema": {"type": ["number", "null"], "default": 30},
    },
    "milvus_bucket": {
        "label": "Milvus' bucket",
        "description": "Milvus' own bucket (minio.bucketName), which physical backups copy binlogs from.",
        "schema": {"type": ["string", "null"], "examples": ["milvus-bucket"]},
    },
    "milvus_root_path": {
        "label": "Milvus' root path",
        "description": "Milvus' minio.rootPath in that bucket. Empty: files.",
        "schema": {"type": ["string", "null"], "examples": ["files"]},
    },
    "milvus_storage_conn_id": {
        "label": "Milvus' storage connection",
        "description": "An aws connection that reaches Milvus' bucket. Empty: the backups' aws connection.",
        "schema": {"type": ["string", "null"]},
    },
}


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata: hooks, operators, sensors, triggers, Asset scheme, connection."""
    return {
        "package-name": "airflow-milvus-backup",
        "name": "Milvus Backup",
        "description": "Back up Milvus collections to S3 (or a directory), restore and verify them.",
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://milvus.io/docs/milvus_backup_overview.md",
                "tags": ["software"],
            }
        ],
        "hooks": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["airflow_milvus_backup.hooks.milvus_backup"],
            }
        ],
        "operators": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "airflow_milvus_backup.operators.backup",
                    "airflow_milvus_backup.operators.restore",
                    "airflow_milvus_backup.operators.retention",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["airflow_milvus_backup.sensors.backup"],
            }
        ],
        "triggers": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "airflow_milvus_backup.triggers.backup",
                    "airflow_milvus_backup.triggers.restore",
                ],
            }
        ],
        "asset-uris": [
            {
                "schemes": ["milvus-backup"],
                "handler": "airflow_milvus_backup.assets.sanitize_uri",
            }
        ],
        "connection-types": [
            {
                "connection-type": "milvus",
                "hook-class-name": "airflow_milvus_backup.hooks.milvus_backup.MilvusBackupHook",
                "hook-name": "Milvus",
                "conn-fields": MILVUS_CONN_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {
                        "host": "Host, URI or Milvus Lite file",
                        "login": "User",
                        "schema": "Database",
                    },
                    "placeholders": {
                        "host": "localhost, https://in03-xxx.zillizcloud.com or /data/milvus.db",
                        "port": "19530 (fill it in: an empty Port fails the Test button)",
                        "login": "root",
                        "schema": "default",
                        "uri": "http://localhost:19530",
                        "server_pem_path": "/etc/milvus/tls/ca.pem",
                        "timeout": "30",
                    },
                },
            }
        ],
    }
