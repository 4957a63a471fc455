"""S3 servers for the tests, on 127.0.0.1 and a free port, and the settings the tests use with them.

* :class:`S3Server` - ``rclone serve s3`` over a local directory (one sub-directory per bucket).
* :class:`MotoS3Server` - ``moto_server`` (in-memory S3, lost on restart).
"""

from __future__ import annotations

import tempfile
import urllib.request
from typing import TYPE_CHECKING, Any

from tests.support.process import HOST, ProcessServer, find_executable, port_is_open

if TYPE_CHECKING:
    from pathlib import Path

#: Extra ``rclone serve s3`` arguments for tests that write and list at once. rclone's
#: ``--dir-cache-time 0s`` makes it spin and take seconds per list/delete after the first write; 1 ms keeps
#: objects visible at once without that (see :class:`S3Server`).
FAST_RCLONE = ["--dir-cache-time", "1ms"]

#: The root path of the tests' backups inside a bucket.
ROOT = "backups"


def boto_client(
    endpoint_url: str, access_key: str, secret_key: str, *, session_token: str | None = None, **config: Any
) -> Any:
    """Return a boto3 S3 client on ``endpoint_url`` (us-east-1, path-style addressing).

    :param session_token: an STS session token, if any.
    :param config: botocore ``Config`` settings (``connect_timeout``, ``read_timeout``, ``retries``, ...).
    """
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=session_token,
        region_name="us-east-1",
        config=Config(**{"s3": {"addressing_style": "path"}, **config}),
    )


class _S3Mixin:
    """boto3 helpers shared by the S3 servers."""

    access_key: str
    secret_key: str
    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server (us-east-1, path-style addressing, few retries)."""
        settings: dict[str, Any] = {
            "signature_version": "s3v4",
            "connect_timeout": 5,
            "read_timeout": 60,
            "retries": {"max_attempts": 2, "mode": "standard"},
        }
        settings.update(config)
        return boto_client(self.endpoint_url, self.access_key, self.secret_key, **settings)

    def _probe_client(self) -> Any:
        return self.client(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1})

    def _create_bucket_via_api(self, name: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client().create_bucket(Bucket=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
                raise


class S3Server(_S3Mixin, ProcessServer):
    """``rclone serve s3`` over data_dir: every top-level directory is a bucket.

    Known rclone limits: UploadPartCopy is broken (plain CopyObject works); If-None-Match is not honoured.
    The log goes to ``data_dir/.rclone.log`` (a top-level file, which rclone does not list as a bucket).

    rclone keeps a directory cache (``--dir-cache-time``, default 5m): files created or changed straight
    on disk behind its back may not show up until then - change objects through the S3 API (or restart
    the server). Do not pass ``--dir-cache-time 0s``: rclone 1.75 then spawns a storm of cache-cleanup
    timers and deadlocks under concurrent PutObject (seen with Milvus 2.3.5 flushing to it).
    """

    name = "rclone-s3"
    default_start_timeout = 30.0

    def __init__(
        self,
        data_dir: Path | str,
        access_key: str = "testaccesskey123",
        secret_key: str = "testsecretkey456",
        port: int | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        super().__init__(data_dir, port)
        self.access_key = access_key
        self.secret_key = secret_key
        self.extra_args = list(extra_args or [])

    @property
    def log_path(self) -> Path:
        return self.data_dir / ".rclone.log"

    def _command(self) -> list[str]:
        return [
            find_executable("rclone"),
            "serve",
            "s3",
            str(self.data_dir),
            "--addr",
            f"{HOST}:{self.port}",
            "--auth-key",
            f"{self.access_key},{self.secret_key}",
            "--config",
            "/dev/null",
            "-v",
            *self.extra_args,
        ]

    def _is_ready(self) -> bool:
        if not port_is_open(self.port):
            return False
        self._probe_client().list_buckets()
        return True

    def bucket_path(self, name: str) -> Path:
        """The directory on disk that holds bucket ``name``."""
        return self.data_dir / name

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` (idempotent): via the API when running, else as a directory."""
        if self.running:
            self._create_bucket_via_api(name)
        else:
            self.bucket_path(name).mkdir(parents=True, exist_ok=True)
        return name


class MotoS3Server(_S3Mixin, ProcessServer):
    """``moto_server``: an in-memory S3 (everything is lost when it stops). Any keys are accepted."""

    name = "moto-s3"
    default_start_timeout = 60.0

    def __init__(
        self,
        data_dir: Path | str | None = None,
        access_key: str = "testing",
        secret_key: str = "testing",
        port: int | None = None,
    ) -> None:
        if data_dir is None:
            data_dir = tempfile.mkdtemp(prefix="moto-server-")
        super().__init__(data_dir, port)
        self.access_key = access_key
        self.secret_key = secret_key

    def _command(self) -> list[str]:
        return [find_executable("moto_server"), "-H", HOST, "-p", str(self.port)]

    def _is_ready(self) -> bool:
        if not port_is_open(self.port):
            return False
        self._probe_client().list_buckets()
        return True

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` (idempotent)."""
        self._create_bucket_via_api(name)
        return name

    def reset(self) -> None:
        """Drop all moto state (buckets and objects)."""
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass
