"""Who may talk to the VC-facing APIs (the Beacon API the VC uses, and the signer API): an aiohttp
middleware in front of every route, checked before any body is read.

- **Browsers.** A VC never sends `Origin`; a browser does on every cross-origin request, so a
  request with an Origin is refused (403): a web page the operator opens cannot post to the node.
- **DNS rebinding.** A page whose name resolves to 127.0.0.1 is same-origin and sends no Origin on
  GET, but its `Host` is its own name. Like geth's `--http.vhosts`, the Host must be an IP literal,
  `localhost`, or a name the operator allowed (`--vc-api-vhosts`; `*` allows any).
- **Content type.** A JSON route takes only `application/json` bodies (415 otherwise): the content
  types a browser may send without a CORS preflight (`text/plain`, forms) are never read as JSON.
- **Token (optional).** With `--vc-api-token-file`, every request must carry the token, as
  `Authorization: Bearer TOKEN` or as the password of HTTP basic auth (a VC that takes only a URL:
  `http://any:TOKEN@127.0.0.1:3600`), as beacon nodes and VCs do for their keymanager APIs (401
  otherwise, compared in constant time).

Each refusal is one JSON error naming the rule, and is counted (`refused`, by rule).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def host_name(host_header: str) -> str:
    """The name in a Host header, without its port (IPv6 literals keep no brackets)."""
    host = host_header.strip()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    name, _, port = host.rpartition(":")
    return name if name and port.isascii() and port.isdigit() else host


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def bearer_or_basic_password(authorization: str) -> str | None:
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


@dataclass
class HttpGuard:
    vhosts: frozenset[str] = frozenset()  # extra Host names (lower case); "*" allows any
    token: str | None = None
    json_paths: Callable[[web.Request], bool] = lambda request: False  # routes whose body is JSON
    refused: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, vhosts: Iterable[str] = (), token: str | None = None) -> HttpGuard:
        return cls(frozenset(h.strip().lower() for h in vhosts if h.strip()), token or None)

    def problem(self, request: web.Request) -> tuple[int, str, str] | None:
        """(status, rule, message) of the first rule the request breaks, or None."""
        if "Origin" in request.headers:
            return 403, "origin", "requests from web pages (with an Origin header) are refused"
        name = host_name(request.headers.get("Host", "")).lower()
        if "*" not in self.vhosts and not (name == "localhost" or is_ip_literal(name) or name in self.vhosts):
            return 403, "host", f"Host {name!r} is not allowed (add it with --vc-api-vhosts)"
        if self.token is not None:
            given = bearer_or_basic_password(request.headers.get("Authorization", ""))
            if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
                return 401, "token", "missing or wrong API token (Authorization: Bearer, or basic auth)"
        if request.body_exists and self.json_paths(request) and request.content_type != "application/json":
            return (
                415,
                "content_type",
                f"expected Content-Type application/json, got {request.content_type!r}",
            )
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        problem = self.problem(request)
        if problem is None:
            return await handler(request)
        status, rule, message = problem
        self.refused[rule] += 1
        headers = {"WWW-Authenticate": 'Bearer realm="covalidator"'} if status == 401 else None
        return web.Response(
            status=status,
            text=json.dumps({"code": status, "message": message}),
            content_type="application/json",
            headers=headers,
        )


def read_token(path: str) -> str:
    """The token in a file (surrounding whitespace ignored); refused when empty."""
    with open(path, encoding="utf-8") as f:
        token = f.read().strip()
    if not token or any(c.isspace() for c in token):
        raise ValueError(f"{path}: the API token must be one non-empty word")
    return token
