"""Physical backups in Milvus Backup's format: its meta files, its binlog layout, our sidecar, the kinds.

Modules (import them directly):

* :mod:`.gojson`: Go ``encoding/json`` for protobuf structs (:class:`~.gojson.GoStruct`).
* :mod:`.mbmodel`: Milvus Backup's ``backuppb`` structs, typed (``BackupInfo`` ... ``Binlog``).
* :mod:`.layout`: the keys of meta files and binlogs (with and without the group folder).
* :mod:`.mbwrite`: write the meta files as Milvus Backup does (current, v0.5, v0.4), backup_meta last.
* :mod:`.mbread`: read them back as Milvus Backup reads them; a backup's state from its ``backup_meta.json``.
* :mod:`.sidecar`: our sidecar ``meta/airflow_milvus_backup.json`` (producer, per-object size and SHA-256).
* :mod:`.kinds`: whose a folder is: ``logical``, ``physical``, ``milvus-backup``.

Nothing here imports Airflow.
"""
