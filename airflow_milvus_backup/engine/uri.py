"""Milvus URIs: credentials are taken out once, so no address with a user or password is ever shown.

pymilvus accepts ``http://user:password@host:port`` (and ``tcp://``, ``https://``; a user alone is a token)
and splits the user information at the *last* ``@``, as :func:`urllib.parse.urlsplit` does: a password may
itself hold ``@`` or ``:``. :func:`split_uri` does the same for every form (with or without a scheme), so the
engine passes the credentials to pymilvus as ``user``/``password``/``token`` and keeps only the bare address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

#: ``scheme://`` at the start of a URI (``http``, ``https``, ``tcp``, ``grpc``, ``unix``, ...).
_SCHEME_RE = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://")


@dataclass(frozen=True)
class SplitUri:
    """A URI without its user information, and what that held.

    :param uri: the URI without ``user:password@``.
    :param user: the user name of ``user:password@`` (percent-decoded), else ``""``.
    :param password: the password of ``user:password@`` (percent-decoded), else ``""``.
    :param token: the whole user information when it had no ``:`` (pymilvus reads it as a token), else ``""``.
    :param raw: the user information as written (it may differ from the decoded values).
    """

    uri: str
    user: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    raw: str = field(default="", repr=False)

    def secrets(self) -> list[str]:
        """Return every form of the secret parts (as written and decoded), longest first."""
        found = {self.password, self.token, self.raw}
        if self.raw and ":" in self.raw:
            found.add(self.raw.split(":", 1)[1])
        return sorted((s for s in found if s), key=len, reverse=True)


def _authority_bounds(uri: str) -> tuple[int, int] | None:
    """Return where the authority (``[userinfo@]host[:port]``) of ``uri`` starts and ends, or ``None``."""
    m = _SCHEME_RE.match(uri)
    if m:
        start = m.end()
    elif "@" in uri and not uri.startswith(("/", ".", "~")) and not uri.endswith(".db"):
        start = 0  # "user:password@host:19530" without a scheme
    else:
        return None  # a Milvus Lite path
    limit = len(uri)
    for sep in "?#":
        i = uri.find(sep, start)
        if i >= 0:
            limit = min(limit, i)
    # user information ends at the last "@" before any query (a password may hold "@", ":" or "/")
    at = uri.rfind("@", start, limit)
    slash = uri.find("/", at + 1 if at >= 0 else start, limit)
    return start, slash if slash >= 0 else limit


def split_uri(uri: str) -> SplitUri:
    """Take the user information out of a Milvus URI.

    :param uri: any URI pymilvus takes, or a Milvus Lite path (returned as it is).
    """
    bounds = _authority_bounds(uri)
    if bounds is None:
        return SplitUri(uri)
    start, end = bounds
    authority = uri[start:end]
    if "@" not in authority:
        return SplitUri(uri)
    raw, host = authority.rsplit("@", 1)
    clean = uri[:start] + host + uri[end:]
    if ":" in raw:
        user, password = raw.split(":", 1)
        return SplitUri(clean, user=unquote(user), password=unquote(password), raw=raw)
    return SplitUri(clean, token=unquote(raw), raw=raw)


def display_address(uri: str) -> str:
    """Return ``uri`` as it may be shown: no user information, no query string or fragment."""
    clean = split_uri(uri).uri
    if _SCHEME_RE.match(clean):
        clean = re.split(r"[?#]", clean, maxsplit=1)[0]
    return clean


def token_secrets(token: str) -> list[str]:
    """Return the secret parts of a token: the token itself and, for ``user:password``, the password."""
    out = [token] if token else []
    if ":" in token:
        password = token.split(":", 1)[1]
        if password:
            out.append(password)
    return out
