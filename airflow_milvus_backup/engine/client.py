"""How the engine reaches Milvus: connection parameters without secrets in their repr, and error mapping."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_incrementing

from airflow_milvus_backup.engine.arguments import seconds
from airflow_milvus_backup.engine.errors import (
    DatabaseNotFoundError,
    MilvusAuthenticationError,
    MilvusConnectionError,
    MilvusLiteLockedError,
)
from airflow_milvus_backup.engine.failures import (
    FailureKind,
    causes,
    classify,
    grpc_status_name,
    is_permission_denied,
    message_of,
)
from airflow_milvus_backup.engine.uri import display_address, split_uri, token_secrets

if TYPE_CHECKING:
    from pymilvus import MilvusClient

log = logging.getLogger(__name__)


@dataclass
class MilvusParams:
    """Everything needed to open a ``MilvusClient``.

    :param uri: ``http(s)://host:port``, a Zilliz Cloud endpoint, or the path of a Milvus Lite ``.db`` file.
        Credentials in it (``http://user:password@host``, any scheme) are taken out once, here: they become
        ``user``/``password`` (or ``token``) unless those are given, and ``uri`` keeps only the address.
    :param token: an API key or ``user:password`` (never logged).
    :param user: user name, with ``password``.
    :param password: password (never logged).
    :param db_name: the database to use.
    :param secure: use TLS.
    :param server_name: the TLS server name to expect.
    :param server_pem_path: CA or server certificate for TLS.
    :param client_pem_path: client certificate for mutual TLS.
    :param client_key_path: client key for mutual TLS.
    :param timeout: seconds for connecting and for each call.
    """

    uri: str
    token: str = field(default="", repr=False)
    user: str = ""
    password: str = field(default="", repr=False)
    db_name: str = "default"
    secure: bool | None = None
    server_name: str = ""
    server_pem_path: str = ""
    client_pem_path: str = ""
    client_key_path: str = ""
    timeout: float = 30.0
    #: the secret parts the URI held (kept to scrub them even where explicit credentials override them)
    uri_secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        self.timeout = seconds(self.timeout, "the Milvus timeout", minimum=0.001)
        parts = split_uri(self.uri)
        if parts.uri == self.uri:
            return
        self.uri = parts.uri
        self.uri_secrets = tuple(dict.fromkeys((*self.uri_secrets, *parts.secrets())))
        if self.token or self.user:
            return  # explicit credentials win over the URI's, as in pymilvus
        if parts.token:
            self.token = parts.token
        else:
            self.user, self.password = parts.user, parts.password

    @property
    def is_lite(self) -> bool:
        """Whether the URI is a Milvus Lite file (embedded)."""
        return not self.uri.startswith(("http://", "https://", "tcp://", "grpc://", "unix:"))

    @property
    def address(self) -> str:
        """The address to show in messages, logs, manifests and statuses: no user information, no query."""
        return display_address(self.uri)

    def secrets(self) -> list[str]:
        """Return the secret values (longest first), so callers can make sure they never appear anywhere."""
        found = {*token_secrets(self.token), self.password, *self.uri_secrets}
        return sorted((s for s in found if s), key=len, reverse=True)

    def client_kwargs(self) -> dict[str, Any]:
        """Return keyword arguments for ``MilvusClient``."""
        kw: dict[str, Any] = {"uri": self.uri, "timeout": self.timeout}
        if self.is_lite:
            kw["uri"] = os.path.abspath(self.uri)
        if self.token:
            kw["token"] = self.token
        if self.user:
            kw["user"] = self.user
            kw["password"] = self.password
        if self.db_name and self.db_name != "default":
            kw["db_name"] = self.db_name
        if self.secure is not None and not self.is_lite:
            kw["secure"] = self.secure
        if self.server_name:
            kw["server_name"] = self.server_name
        if self.server_pem_path:
            kw["server_pem_path"] = self.server_pem_path
            kw["ca_pem_path"] = self.server_pem_path
        if self.client_pem_path:
            kw["client_pem_path"] = self.client_pem_path
        if self.client_key_path:
            kw["client_key_path"] = self.client_key_path
        return kw

    def scrub(self, text: str) -> str:
        """Replace every secret value in ``text`` by ``***``."""
        for s in self.secrets():
            text = text.replace(s, "***")
        return text


def describe_milvus_error(params: MilvusParams, exc: BaseException, what: str) -> str:
    """Return one clear message for a pymilvus failure, naming Milvus and its address, with no secret."""
    msg = params.scrub(str(getattr(exc, "message", None) or exc))
    return f"{what}: Milvus at {params.address} failed: {msg}"


def is_connection_failure(exc: BaseException) -> bool:
    """Return whether a pymilvus/grpc exception means Milvus is unreachable or refused the login.

    Decided by :func:`~airflow_milvus_backup.engine.failures.classify` (types, gRPC status, server codes),
    not by words alone: a refused row naming a field ``auth_code`` is not a refused login.
    """
    return classify(exc) in (FailureKind.UNREACHABLE, FailureKind.AUTH)


def auth_failure(exc: BaseException) -> str | None:
    """Return the server's reason if ``exc`` (or an error it came from) is a refused login, else ``None``.

    pymilvus reports a wrong password or token as "Fail connecting to server ... illegal connection params or
    server unavailable"; the gRPC error underneath says UNAUTHENTICATED and why (Milvus 2.3.5: "auth check
    failure, please check username and password are correct", "missing authorization in header").
    """
    for e in causes(exc):
        if grpc_status_name(e) in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return message_of(e) or grpc_status_name(e)
    return None


def _connection_error(params: MilvusParams, exc: BaseException, what: str) -> MilvusConnectionError:
    if is_permission_denied(exc):
        return MilvusAuthenticationError(
            f"{what}: Milvus at {params.address} denied the connection's user a privilege it needs "
            f"({params.scrub(message_of(exc))}). Grant that privilege to one of the user's roles, or use a "
            "user that has it in the Milvus connection."
        )
    reason = auth_failure(exc)
    if reason is None and classify(exc) is FailureKind.AUTH:
        reason = message_of(exc)
    if reason is not None:
        return MilvusAuthenticationError(
            f"{what}: Milvus at {params.address} refused the credentials ({params.scrub(reason)}). "
            "Check the user and password, or the token, of the Milvus connection."
        )
    return MilvusConnectionError(
        describe_milvus_error(params, exc, what)
        + ". Check that Milvus is running and the address, token and TLS settings are right."
    )


@contextmanager
def milvus_errors(params: MilvusParams, what: str) -> Iterator[None]:
    """Translate connection-level pymilvus errors inside the block into :class:`MilvusConnectionError`."""
    try:
        yield
    except MilvusConnectionError:
        raise
    except Exception as e:
        from pymilvus.exceptions import MilvusException

        grpc_err = type(e).__module__.startswith("grpc")
        if (isinstance(e, MilvusException) or grpc_err) and is_connection_failure(e):
            raise _connection_error(params, e, what) from None
        raise


def _shares_connections() -> bool:
    """Whether this pymilvus shares one gRPC channel between clients of the same address and token (3.x)."""
    try:
        from pymilvus.client.connection_manager import ConnectionManager
    except ImportError:
        return False
    return hasattr(ConnectionManager, "get_or_create")


def _goaway(exc: BaseException) -> bool:
    """Return whether ``exc`` (or its cause) is a server closing the connection (HTTP/2 GOAWAY).

    gRPC shares TCP connections between channels to the same address: a new client can be handed one that
    the server is closing at that moment, e.g. after ``too_many_pings`` on a long-idle channel (Milvus Lite's
    server keeps gRPC's strict default ping policy). Connecting again opens a fresh connection. Read in the
    words: gRPC reports a GOAWAY as UNAVAILABLE, as it does a server that is down (which is not retried here,
    so that an unreachable Milvus fails after one timeout, not three).
    """
    for seen in causes(exc):
        text = str(seen).lower()
        if "too many pings" in text or "goaway" in text or "too_many_pings" in text:
            return True
    return False


def connect(params: MilvusParams, db: str | None = None) -> MilvusClient:
    """Open a ``MilvusClient``, or raise :class:`MilvusConnectionError` naming the address (no secret).

    The client gets a connection of its own: pymilvus 3 otherwise hands back any open channel to the same
    address and token, whatever its TLS settings (a TLS client could get a plaintext channel, or one that
    trusted another CA) and timeout. This is the one way the engine opens a client for a database.

    :param params: the Milvus to connect to.
    :param db: the database the client works in (default: ``params.db_name``). A client of its own per
        database: ``MilvusClient.use_database`` calls ``describe_database``, which Milvus before 2.4 lacks.
    """
    from pymilvus import MilvusClient

    if db is not None and db != params.db_name:
        params = replace(params, db_name=db)

    kwargs = params.client_kwargs()
    if _shares_connections():
        kwargs["dedicated"] = True
    if params.is_lite:
        _check_lite_lock(kwargs["uri"])
    with milvus_errors(params, "Connect"):
        try:
            for attempt in Retrying(
                retry=retry_if_exception(_goaway),
                stop=stop_after_attempt(3),
                wait=wait_incrementing(start=0.5, increment=0.5),
                reraise=True,
                before_sleep=lambda rs: log.info(
                    "Milvus at %s closed the new connection (%s); connecting again",
                    params.address,
                    params.scrub(str(rs.outcome.exception() if rs.outcome else "")),
                ),
            ):
                with attempt:
                    client = MilvusClient(**kwargs)
        except Exception as e:
            from pymilvus.exceptions import MilvusException

            if isinstance(e, MilvusException) and "database not found" in str(e).lower():
                raise DatabaseNotFoundError(
                    f"Database {params.db_name!r} does not exist in Milvus at {params.address}; "
                    "create it or fix "
                    "db_name."
                ) from None
            if params.is_lite:
                _check_lite_lock(kwargs["uri"], after_failure=True)
            if isinstance(e, MilvusException) and not is_connection_failure(e):
                raise
            raise _connection_error(params, e, "Connect") from None
    return client


def _check_lite_lock(path: str, *, after_failure: bool = False) -> None:
    """Raise :class:`MilvusLiteLockedError` if another process holds the Lite file ``path``.

    Checked before opening (unless this process serves the file already), so the failure is one clear
    message instead of Milvus Lite's traceback and pymilvus' "Open local milvus failed"; and after a failed
    open, for a lock taken in between.
    """
    from airflow_milvus_backup.engine import lite

    if not after_failure and lite.server_running(path):
        return
    holders = lite.held_elsewhere(path)
    if holders:
        raise MilvusLiteLockedError(lite.locked_message("Connect", path, holders)) from None


def server_version(client: MilvusClient, address: str) -> str:
    """Return the server's version text, ``""`` when it does not answer GetVersion (Milvus Lite 2.5).

    A server without GetVersion is taken for Milvus :data:`~.server_api.UNREPORTED_VERSION` (2.5.0) by the
    capability checks (:func:`~.restore.capabilities.version_numbers`); the log says so once per address.

    :param client: a client of the server.
    :param address: the server's address, for the log line saying what is assumed.
    """
    from airflow_milvus_backup.engine import server_api

    try:
        return str(client.get_server_version())
    except Exception as exc:
        if not server_api.is_unimplemented(exc):
            raise
    server_api.note_lacking(address, server_api.VERSION)
    return ""
