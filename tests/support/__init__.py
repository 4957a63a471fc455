"""Helpers shared by the test suite: real servers on 127.0.0.1 and the data and Airflow set-up around them.

* :mod:`tests.support.process` - free ports, process groups, PR_SET_PDEATHSIG, the base server class,
  :func:`~tests.support.process.plain_spawn`, :func:`~tests.support.process.silent_listener`.
* :mod:`tests.support.s3` - :class:`~tests.support.s3.S3Server` (rclone),
  :class:`~tests.support.s3.MotoS3Server`, ``FAST_RCLONE`` and ``ROOT``.
* :mod:`tests.support.lite` - :class:`~tests.support.lite.MilvusLiteServer`,
  :func:`~tests.support.lite.open_client`.
* :mod:`tests.support.milvus235` - :class:`~tests.support.milvus235.Milvus235Server`.
* :mod:`tests.support.milvus235_launcher` - the script that runs Milvus 2.3.5 in its own process.

No module here is called ``milvus.py``: the launcher runs as a script from this directory, where that
name would hide the ``milvus`` package it imports.
* :mod:`tests.support.faultproxy` - a reverse proxy that answers scripted S3 faults.
* :mod:`tests.support.datagen` - collections with every field type, and their rows in canonical form.
* :mod:`tests.support.airflow_env` - a temporary AIRFLOW_HOME (import it before Airflow) and its fixtures.

The fixtures that start the servers are in ``tests/conftest.py``. Nothing here edits ``sys.path``: pytest
puts the repository root first on it (``pythonpath`` in pyproject.toml), so ``tests.support`` imports as
a package.
"""
