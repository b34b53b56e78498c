"""Who may see and steer the dashboard: roles, signed sessions, CSRF and security headers.

The dashboard accepts the API's tokens (see ``asyncqueue.server.auth``). A browser posts one
to the login form once and gets a session cookie: HttpOnly, ``SameSite=Strict``, holding the
role, an expiry and a random nonce, signed with HMAC-SHA256 (never the token itself). A
script or ``curl`` may instead send the token as HTTP Basic password (any user name) or as
``Authorization: Bearer``. ``admin`` tokens may act; ``read`` tokens only see (no buttons,
403 on every action); ``worker`` tokens are refused: they are for machines.

Every state-changing request must carry the form's CSRF token, which is bound to the
session, and must not come from another site (``Sec-Fetch-Site`` / ``Origin``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asyncqueue.errors import ConfigurationError
from asyncqueue.server.auth import TOKEN_VARIABLE, TOKENS_VARIABLE, ApiTokens
from asyncqueue.server.auth import Scope as TokenScope

#: The session cookie's name.
SESSION_COOKIE = "asyncqueue_dashboard"
#: How long a login lasts, in seconds.
SESSION_SECONDS = 12 * 3600

#: No inline script or style, nothing from elsewhere, never framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
#: Sent with every dashboard response.
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-robots-tag", "noindex, nofollow"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
)


class Role(StrEnum):
    """What a dashboard viewer may do."""

    #: See everything and act (retry, cancel, bulk retry).
    ADMIN = "admin"
    #: See everything; no buttons, and 403 on every action.
    READ = "read"


@dataclass(frozen=True, slots=True)
class Viewer:
    """The authenticated viewer of one request.

    Attributes:
        role: what they may do.
        csrf: the CSRF token their forms carry.
        via: how they authenticated: ``session``, ``basic``, ``bearer`` or ``open``.
    """

    role: Role
    csrf: str
    via: str

    @property
    def can_act(self) -> bool:
        """Whether the viewer may change jobs."""
        return self.role is Role.ADMIN


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class DashboardAuth:
    """Decides who a request comes from, and whether it may change anything.

    Args:
        tokens: the accepted API tokens.
        insecure: with no tokens, let everyone in (as admin, or as reader if
            ``read_only``). Only for a server on the loopback interface.
        read_only: nobody may act, admins included.
        secret: the key sessions are signed with (default: random, per process, so a
            restart logs everyone out). Give the same one to every replica behind a load
            balancer.

    Raises:
        ConfigurationError: no token and not ``insecure``, or a secret shorter than 16 bytes.
    """

    def __init__(
        self,
        tokens: ApiTokens | None = None,
        *,
        insecure: bool = False,
        read_only: bool = False,
        secret: str | bytes | None = None,
    ) -> None:
        self.tokens = tokens if tokens is not None else ApiTokens()
        if not self.tokens and not insecure:
            raise ConfigurationError(
                f"the dashboard needs an API token: set {TOKEN_VARIABLE} (an admin token) or "
                f"{TOKENS_VARIABLE}, or allow unauthenticated access explicitly "
                "(insecure=True, --insecure) on a loopback-only server"
            )
        self.open = not self.tokens
        self.read_only = read_only
        key = secret.encode() if isinstance(secret, str) else secret
        if key is not None and len(key) < 16:
            raise ConfigurationError("the dashboard's session secret must be 16 bytes or more")
        self._key = key if key is not None else secrets.token_bytes(32)

    # -- roles -------------------------------------------------------------------------

    def _role(self, scope: TokenScope | None) -> Role | None:
        if scope is TokenScope.ADMIN:
            return Role.READ if self.read_only else Role.ADMIN
        if scope is TokenScope.READ:
            return Role.READ
        return None

    def token_role(self, token: str) -> tuple[Role | None, bool]:
        """The role a token gives, and whether the token is known at all (a worker token
        is known but gives no role)."""
        scope = self.tokens.scope_of(token)
        return self._role(scope), scope is not None

    def viewer(self, request: Request) -> Viewer | None:
        """The request's viewer, or None when it carries no valid credentials."""
        if self.open:
            role = Role.READ if self.read_only else Role.ADMIN
            return Viewer(role, self._mac("csrf", "open"), "open")
        authorization = request.headers.get("authorization", "")
        kind, _, credentials = authorization.partition(" ")
        if kind.lower() == "basic":
            return self._header_viewer(_basic_password(credentials), "basic")
        if kind.lower() == "bearer":
            return self._header_viewer(credentials.strip(), "bearer")
        cookie = request.cookies.get(SESSION_COOKIE)
        return None if cookie is None else self._session_viewer(cookie)

    def _header_viewer(self, token: str | None, via: str) -> Viewer | None:
        if not token:
            return None
        role, _ = self.token_role(token)
        if role is None:
            return None
        material = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        return Viewer(role, self._mac("csrf", material), via)

    # -- sessions ----------------------------------------------------------------------

    def _mac(self, *parts: str) -> str:
        message = "\x00".join(parts).encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def new_session(self, role: Role, now: float | None = None) -> str:
        """A signed session cookie value for ``role``."""
        expires = (time.time() if now is None else now) + SESSION_SECONDS
        body = {"r": role.value, "x": int(expires), "n": secrets.token_urlsafe(16)}
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._mac('session', payload)}"

    def _session_viewer(self, value: str, now: float | None = None) -> Viewer | None:
        payload, _, signature = value.partition(".")
        if not hmac.compare_digest(signature.encode(), self._mac("session", payload).encode()):
            return None
        try:
            body = json.loads(_unb64(payload))
            role, expires, nonce = Role(body["r"]), float(body["x"]), str(body["n"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if expires < (time.time() if now is None else now):
            return None
        if self.read_only:
            role = Role.READ
        return Viewer(role, self._mac("csrf", "session", nonce), "session")


def _basic_password(credentials: str) -> str | None:
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, separator, password = decoded.partition(":")
    return password if separator else None


def cross_site_reason(request: Request) -> str | None:
    """Why a state-changing request looks cross-site, or None when it does not.

    Browsers send ``Sec-Fetch-Site``, which decides alone: it holds whatever ``Host`` a
    proxy in front rewrote (nginx's default does). Older browsers send only ``Origin``,
    compared with ``Host``. A client sending neither (a script) is judged by its CSRF
    token alone.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site in ("same-origin", "none"):
            return None
        return f"a {fetch_site} request may not change anything here"
    origin = request.headers.get("origin")
    if origin is not None:
        host = request.headers.get("host", "")
        if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
            return "a request from another origin may not change anything here"
    return None


def csrf_matches(viewer: Viewer, presented: str | None) -> bool:
    """Whether a form's CSRF token is the viewer's."""
    return presented is not None and hmac.compare_digest(
        viewer.csrf.encode(), presented.encode("utf-8", "surrogatepass")
    )


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = Headers(raw=message.get("headers", []))
                extra = [
                    (name.encode(), value.encode())
                    for name, value in SECURITY_HEADERS
                    if name not in present
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
