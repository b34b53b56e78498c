"""API tokens and their scopes: who may call which route.

A token is a secret sent as ``Authorization: Bearer <token>``. Each has one scope:

- ``admin``: every route;
- ``worker``: the routes a remote worker uses (claim, complete, fail, heartbeat, exchange,
  renew, wait, the worker heartbeat and removal) and reading one task;
- ``read``: the GET routes (stats, task lists, one task, workers, metrics).

Tokens come from ``QUEUE_API_TOKEN`` (one admin token), ``QUEUE_API_TOKENS`` and token files
(entries ``SCOPE TOKEN``, see :meth:`ApiTokens.parse`). Only their SHA-256 digests are kept,
and a presented token is compared with every digest in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from asyncqueue.errors import ConfigurationError

#: The variable holding one admin token.
TOKEN_VARIABLE = "QUEUE_API_TOKEN"
#: The variable holding scoped tokens, in the token file's format (commas also separate).
TOKENS_VARIABLE = "QUEUE_API_TOKENS"


class Scope(StrEnum):
    """What a token may do."""

    #: Every route.
    ADMIN = "admin"
    #: The remote worker's routes, and reading one task.
    WORKER = "worker"
    #: The GET routes.
    READ = "read"


#: Scopes allowed on the routes a remote worker calls.
WORKER_SCOPES: frozenset[Scope] = frozenset({Scope.ADMIN, Scope.WORKER})
#: Scopes allowed on the operator's read-only routes.
READ_SCOPES: frozenset[Scope] = frozenset({Scope.ADMIN, Scope.READ})
#: Scopes allowed to read one task.
TASK_READ_SCOPES: frozenset[Scope] = frozenset(Scope)
#: Scopes allowed to change jobs outside a lease (enqueue, retry, cancel).
ADMIN_SCOPES: frozenset[Scope] = frozenset({Scope.ADMIN})

_ENTRY_SEPARATORS = re.compile(r"[,\n]")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class ApiTokens:
    """A set of API tokens, each with a :class:`Scope`; kept as SHA-256 digests.

    Build one with :meth:`parse`, :meth:`from_file`, :meth:`from_environment` or
    :meth:`admin`, and combine them with ``|``.
    """

    _digests: tuple[tuple[bytes, Scope], ...] = field(default=(), repr=False)

    @classmethod
    def admin(cls, token: str) -> ApiTokens:
        """One admin token.

        Raises:
            ConfigurationError: the token is empty or contains whitespace.
        """
        return cls.from_pairs([(Scope.ADMIN, token)])

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[Scope | str, str]]) -> ApiTokens:
        """Tokens from ``(scope, token)`` pairs.

        Raises:
            ConfigurationError: an unknown scope, an empty token or one with whitespace, or
                one token given two different scopes.
        """
        scopes: dict[bytes, Scope] = {}
        for scope_name, token in pairs:
            scope = _scope(str(scope_name))
            if not token or re.search(r"\s", token):
                raise ConfigurationError("an API token must be non-empty, without whitespace")
            digest = _digest(token)
            if scopes.get(digest, scope) is not scope:
                raise ConfigurationError("an API token is given two different scopes")
            scopes[digest] = scope
        return cls(tuple(scopes.items()))

    @classmethod
    def parse(cls, text: str, source: str = "tokens") -> ApiTokens:
        """Tokens from text: one entry a line (or comma-separated), each ``SCOPE TOKEN``.

        ``SCOPE:TOKEN`` also works. Blank lines and lines starting with ``#`` are skipped.

        Args:
            text: the entries.
            source: where the text came from, named in error messages.

        Raises:
            ConfigurationError: an entry is malformed (its number is in the message; the
                token is never quoted).
        """
        pairs: list[tuple[str, str]] = []
        for number, raw in enumerate(_ENTRY_SEPARATORS.split(text), start=1):
            entry = raw.strip()
            if not entry or entry.startswith("#"):
                continue
            parts = entry.split(None, 1) if re.search(r"\s", entry) else entry.split(":", 1)
            if len(parts) != 2 or not parts[1].strip():
                raise ConfigurationError(
                    f"{source}: entry {number} is not 'SCOPE TOKEN' (scopes: admin, worker, read)"
                )
            pairs.append((parts[0], parts[1].strip()))
        try:
            return cls.from_pairs(pairs)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ApiTokens:
        """Tokens from a file of ``SCOPE TOKEN`` lines (see :meth:`parse`).

        Raises:
            ConfigurationError: the file cannot be read or an entry is malformed.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"cannot read the token file {os.fspath(path)}: {exc}"
            ) from exc
        return cls.parse(text, source=os.fspath(path))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ApiTokens:
        """Tokens from ``QUEUE_API_TOKEN`` (admin) and ``QUEUE_API_TOKENS`` (scoped).

        Raises:
            ConfigurationError: a variable holds a malformed entry.
        """
        env = os.environ if environ is None else environ
        tokens = cls()
        if env.get(TOKEN_VARIABLE, "").strip():
            try:
                tokens |= cls.admin(env[TOKEN_VARIABLE].strip())
            except ConfigurationError as exc:
                raise ConfigurationError(f"{TOKEN_VARIABLE}: {exc}") from None
        if env.get(TOKENS_VARIABLE, "").strip():
            tokens |= cls.parse(env[TOKENS_VARIABLE], source=TOKENS_VARIABLE)
        return tokens

    def __or__(self, other: ApiTokens) -> ApiTokens:
        merged = dict(self._digests)
        for digest, scope in other._digests:
            if merged.get(digest, scope) is not scope:
                raise ConfigurationError("an API token is given two different scopes")
            merged[digest] = scope
        return ApiTokens(tuple(merged.items()))

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def scope_of(self, token: str) -> Scope | None:
        """The token's scope, or None for an unknown token.

        Every digest is compared, in constant time, whichever matches: the time taken says
        nothing about which token, or how much of one, was right.
        """
        presented = _digest(token)
        found: Scope | None = None
        for digest, scope in self._digests:
            if hmac.compare_digest(digest, presented):
                found = scope
        return found


def _scope(name: str) -> Scope:
    try:
        return Scope(name.strip().lower())
    except ValueError:
        raise ConfigurationError(
            f"unknown token scope {name.strip()!r}; scopes: admin, worker, read"
        ) from None


_bearer = HTTPBearer(auto_error=False, description="An API token: Authorization: Bearer TOKEN")


class TokenAuth:
    """Checks the bearer token of each request against :class:`ApiTokens`.

    Args:
        tokens: the accepted tokens.
        insecure: with no tokens, accept every request as admin. Meant for a server on the
            loopback interface only; ignored when tokens are given.

    Raises:
        ConfigurationError: no token and not ``insecure``.
    """

    def __init__(self, tokens: ApiTokens | None = None, *, insecure: bool = False) -> None:
        self.tokens = tokens if tokens is not None else ApiTokens()
        if not self.tokens and not insecure:
            raise ConfigurationError(
                f"no API token configured: set {TOKEN_VARIABLE} (an admin token) or "
                f"{TOKENS_VARIABLE}, pass a token file, or allow unauthenticated access "
                "explicitly (insecure=True, --insecure) on a loopback-only server"
            )
        self.open = not self.tokens

    def scope_of(self, credentials: HTTPAuthorizationCredentials | None) -> Scope:
        """The scope of a request's credentials.

        Raises:
            HTTPException: 401 when the token is missing or unknown.
        """
        if self.open:
            return Scope.ADMIN
        scope = None if credentials is None else self.tokens.scope_of(credentials.credentials)
        if scope is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="a valid API token is required: Authorization: Bearer TOKEN",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return scope

    def requires(self, allowed: frozenset[Scope]) -> Callable[..., Awaitable[Scope]]:
        """A FastAPI dependency that admits tokens of the ``allowed`` scopes, returning the scope.

        It answers 401 without a valid token and 403 for a token of another scope.
        """

        async def dependency(
            credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
        ) -> Scope:
            scope = self.scope_of(credentials)
            if scope not in allowed:
                raise HTTPException(
                    status.HTTP_403_FORBIDDEN,
                    detail=f"a {scope.value} token may not do this",
                )
            return scope

        return dependency
