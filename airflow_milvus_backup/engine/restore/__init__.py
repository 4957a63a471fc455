"""Restore collections from a backup: by insert or by Milvus bulk import, resumable, with a persisted status.

One restore (:meth:`RestoreEngine.restore`, in :mod:`.engine`) goes:

1. **plan**: :mod:`.selection` resolves the selection and the target names, :mod:`.snapshot` reads the
   target Milvus, and :mod:`.plan` decides (pure, with :mod:`.options` and :mod:`.capabilities`), checking
   everything *before anything is touched*; :mod:`.preflight` checks every data object's presence and size
   (one listing of ``<backup>/data/``) and, for bulk import, every object's sha256.
2. **status** (:mod:`.status`, its model :mod:`.status_model`, reading and listing :mod:`.status_store`):
   ``<backup>/restores/<restore_id>.json`` in the backup's storage, written at once and after each step and
   each data file, only through the verbs of :class:`~.status.Status`.
3. **setup** (:mod:`.setup`): databases, collections with the exact captured schema, partitions, indexes;
   undone if it fails.
4. **data**: :mod:`.by_insert` (download, check, insert in batches) or :mod:`.bulk` (one import job per data
   file, polled until done; :mod:`.detached` for a restore that does not wait).
5. **finish** (:mod:`.finish`): flush, temporary properties removed, load state, aliases, counts.

Primary keys are kept. For ``auto_id`` collections the engine sets the collection property
``allow_insert_auto_id`` while inserting (Milvus Lite and Milvus 2.6+) and removes it afterwards; on servers
without it (e.g. Milvus 2.3.5, whose bulk import refuses an auto_id key column too) the restore is refused
with :class:`UnsupportedError` unless ``accept_new_primary_keys=True``, which lets Milvus generate new keys.
BM25 function outputs are not stored in a backup: Milvus regenerates them on insert.

Resume: run the restore again with the same arguments (the same ``restore_id``, or none: the engine then
picks the newest failed or dead restore with identical arguments). Data files recorded ``done`` are skipped;
every other file is inserted again, each batch's primary keys deleted just before the batch is inserted.
Acknowledged inserts are durable in Milvus' log, so no flush per file is needed, and per-file progress is
written at most every ``status_interval`` seconds (a ``done`` not written yet only costs the file being
redone).

Server quirks handled here: Milvus Lite has no bulk import, reports index names as the field name and no
build params, loads a new collection by itself (an unloaded source is released again; the report says so),
ignores the partition in ``delete`` (a primary key is unique per collection anyway); Milvus 2.3.5 ignores
``nullable`` (refused here), has no ``describe_database``, has one vector field per collection, and shows
bulk-imported rows only after release + load.
"""

from __future__ import annotations

from airflow_milvus_backup.engine.restore.capabilities import AUTO_ID_PROPERTY, ServerInfo
from airflow_milvus_backup.engine.restore.engine import RestoreEngine
from airflow_milvus_backup.engine.restore.options import METHODS, RestoreOptions, new_restore_id
from airflow_milvus_backup.engine.restore.status import status_key

__all__ = [
    "AUTO_ID_PROPERTY",
    "METHODS",
    "RestoreEngine",
    "RestoreOptions",
    "ServerInfo",
    "new_restore_id",
    "status_key",
]
