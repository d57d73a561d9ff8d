"""The reverse proxy: every Beacon-API request covalidator does not intercept, passed to a BN unchanged.

Decides how a request reaches a BN, not what it means: the BNs are tried in the BN client's order
(healthy primaries, then fallbacks, then the others); a BN that cannot be reached, or answers 5xx
while another BN is left to ask, is skipped. Request bodies up to `BUFFER_LIMIT` are read first (so
the next BN can be asked); a larger or length-less body is streamed to one BN without failover.
Response bodies are streamed chunk by chunk (chunked transfer when the BN sent no length), so the
server-sent event stream `/eth/v1/events` stays open and each event reaches the VC as the BN sends it.
Hop-by-hop headers (RFC 9110 7.6.1, and those a Connection header lists) are not forwarded.

Optional rewrites (the DV pubkey mapping of `validator_api`): a JSON response (buffered, then
rewritten), the query string, a JSON request body, and the path. A request with a rewrite asks the
BN for an identity-encoded body. Must not: interpret requests or answers beyond those rewrites.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

log = logging.getLogger("covalidator.proxy")

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
BUFFER_LIMIT: Final = 1 * 2**20  # request bodies up to this are buffered (failover possible)
ERROR_BODY_LIMIT: Final = 64 * 2**10  # a 5xx body kept while the next BN is asked
REWRITE_LIMIT: Final = 64 * 2**20  # a JSON response to rewrite is read whole, up to this
CONNECT_TIMEOUT_S: Final = 5.0
READ_TIMEOUT_S: Final = 60.0  # between two reads of a response (not for the event stream)
EVENTS_PATH: Final = "/eth/v1/events"
# The proxy's own connection pool, apart from the BN client's: what a VC (or any local process)
# passes through can never take the connections the node needs for its duties. Event streams hold a
# connection for as long as they last, so they get a smaller cap of their own (503 beyond it).
PROXY_CONNECTIONS: Final = 32  # per BN
EVENT_STREAMS: Final = 8

JsonRewrite = Callable[[Any], Any]
TextRewrite = Callable[[str], str]


@dataclass(frozen=True)
class Rewrites:
    """What the proxy changes on the way; every field optional."""

    response: JsonRewrite | None = None  # the JSON response body
    query: TextRewrite | None = None  # the raw query string
    body: JsonRewrite | None = None  # the JSON request body
    path: str | None = None  # the path sent to the BN instead of the request's


def forward_headers(
    headers: CIMultiDictProxy[str] | CIMultiDict[str], drop: Iterable[str] = ()
) -> CIMultiDict[str]:
    """The headers a proxy passes on: without hop-by-hop ones (also those the Connection header names),
    Host and Content-Length (the next hop's own) and any in `drop`."""
    named = {
        token.strip().lower()
        for value in headers.getall("Connection", [])
        for token in value.split(",")
        if token.strip()
    }
    skip = HOP_BY_HOP | named | {"host", "content-length"} | {d.lower() for d in drop}
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in skip)


def upstream_url(base: str, path: str, query: str) -> URL:
    """The BN URL (its path prefix, credentials and query kept as given) with the request's encoded
    path appended and its encoded query added: built from parts, never by pasting strings, so no
    request can change the scheme, host or port the proxy talks to, and nothing is decoded twice."""
    url = URL(base)
    joined = url.raw_path.rstrip("/") + (path if path.startswith("/") else "/" + path)
    query = "&".join(q for q in (url.raw_query_string, query) if q)
    bare = str(url.with_query(None).with_fragment(None).with_path(joined, encoded=True))
    return URL(bare + (f"?{query}" if query else ""), encoded=True)


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)


async def read_limited(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The body up to `limit` bytes (all of it when shorter): `read(n)` alone may stop at a chunk."""
    parts: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await stream.read(limit - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


class ReverseProxy:
    """`forward` is ValidatorAPI's seam; `bn` is the node's BeaconNodeClient (its session, BN order and
    statistics)."""

    def __init__(
        self,
        bn: Any,
        *,
        read_timeout_s: float = READ_TIMEOUT_S,
        connections: int = PROXY_CONNECTIONS,
        event_streams: int = EVENT_STREAMS,
    ) -> None:
        self.bn = bn
        self.read_timeout_s = read_timeout_s
        self.connections = connections
        self.event_streams = event_streams
        self.forwarded = 0
        self.failed = 0
        self.refused_streams = 0
        self.streams_open = 0  # event streams being relayed right now
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                auto_decompress=False,
                headers={"User-Agent": "covalidator"},
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=self.connections),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def forward(
        self,
        request: web.Request,
        response_rewrite: JsonRewrite | None = None,
        query_rewrite: TextRewrite | None = None,
        *,
        body_rewrite: JsonRewrite | None = None,
        path: str | None = None,
    ) -> web.StreamResponse:
        return await self.relay(request, Rewrites(response_rewrite, query_rewrite, body_rewrite, path))

    async def relay(self, request: web.Request, rewrites: Rewrites = Rewrites()) -> web.StreamResponse:
        # the parsed origin-form target, as the VC encoded it (an absolute-form target such as
        # `GET http://elsewhere/x` keeps only its path: the proxy never picks the host from a request)
        path = rewrites.path or request.rel_url.raw_path
        query = request.rel_url.raw_query_string
        if rewrites.query is not None and query:
            query = rewrites.query(query)
        headers = forward_headers(request.headers)
        if rewrites.response is not None or rewrites.body is not None:
            headers["Accept-Encoding"] = "identity"
        events = path == EVENTS_PATH or "text/event-stream" in request.headers.get("Accept", "")
        if events and self.streams_open >= self.event_streams:
            self.refused_streams += 1
            return error_response(503, f"too many event streams open ({self.event_streams})")

        body: bytes | aiohttp.StreamReader | None = None
        if request.body_exists:
            length = request.content_length
            if rewrites.body is not None or (length is not None and length <= BUFFER_LIMIT):
                body = await request.read()
                if rewrites.body is not None:
                    try:
                        body = json.dumps(rewrites.body(json.loads(body))).encode()
                    except ValueError as error:
                        return error_response(400, f"malformed JSON body: {error}")
            else:
                body = request.content  # streamed: one BN only
        candidates = list(self.bn.candidates())
        if isinstance(body, aiohttp.StreamReader):
            candidates = candidates[:1]
        failures: list[str] = []
        answered: web.Response | None = None  # the first 5xx answer, if no BN gives a better one
        for position, url in enumerate(candidates):
            last = position == len(candidates) - 1
            started = time.monotonic()
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=None if events else self.read_timeout_s
            )
            try:
                upstream = await self.session.request(
                    request.method,
                    upstream_url(self.bn.real_url(url), path, query),
                    headers=headers,
                    data=body,
                    timeout=timeout,
                    allow_redirects=False,
                    auto_decompress=False,
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                detail = self.bn.scrub(f"{type(error).__name__}: {error}")
                self.bn.record(url, "passthrough", started, f"connection: {detail}")
                failures.append(f"{url}: {detail}")
                continue
            if upstream.status >= 500 and not last:
                # another BN may do better; this answer stands if none does
                try:
                    raw = await read_limited(upstream.content, ERROR_BODY_LIMIT)
                    if answered is None:
                        headers_back = forward_headers(upstream.headers)
                        answered = web.Response(body=raw, status=upstream.status, headers=headers_back)
                except (aiohttp.ClientError, OSError, TimeoutError):
                    pass
                finally:
                    upstream.release()
                self.bn.record(url, "passthrough", started, f"status_5xx: {upstream.status} {path}")
                failures.append(f"{url}: {upstream.status}")
                continue
            self.bn.record(url, "passthrough", started)
            self.forwarded += 1
            try:
                if rewrites.response is not None and not events:
                    return await self._rewritten(request, upstream, rewrites.response)
                return await self._stream(request, upstream, events)
            except (aiohttp.ClientError, OSError, TimeoutError) as error:  # the BN broke off mid-body
                return error_response(502, f"{url} broke off its answer: {type(error).__name__}")
            finally:
                upstream.release()
        self.failed += 1
        if answered is not None:
            return answered
        log.warning("no beacon node answered %s %s: %s", request.method, path, "; ".join(failures))
        return error_response(502, f"no beacon node answered ({'; '.join(failures) or 'none configured'})")

    async def _rewritten(
        self, request: web.Request, upstream: aiohttp.ClientResponse, rewrite: JsonRewrite
    ) -> web.StreamResponse:
        raw = await read_limited(upstream.content, REWRITE_LIMIT + 1)
        if len(raw) > REWRITE_LIMIT:  # too large to rewrite in memory: passed on unchanged
            log.warning(
                "%s: answer over %d bytes passed on without the pubkey mapping", request.path, REWRITE_LIMIT
            )
            return await self._stream(request, upstream, False, raw)
        try:
            if upstream.headers.get("Content-Encoding", "identity") != "identity":
                raise ValueError("not a plain JSON body")
            text = json.dumps(rewrite(json.loads(raw))).encode()
        except (ValueError, UnicodeDecodeError):
            return web.Response(body=raw, status=upstream.status, headers=forward_headers(upstream.headers))
        headers = forward_headers(upstream.headers, drop=("content-encoding",))
        headers["Content-Type"] = "application/json"
        return web.Response(body=text, status=upstream.status, headers=headers)

    async def _stream(
        self, request: web.Request, upstream: aiohttp.ClientResponse, events: bool, head: bytes = b""
    ) -> web.StreamResponse:
        """The BN's answer relayed as it arrives (`head`: bytes of it already read)."""
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.update(forward_headers(upstream.headers))
        if upstream.content_length is not None and not events:
            response.content_length = upstream.content_length
        else:
            response.enable_chunked_encoding()
        if events:
            self.streams_open += 1
        try:
            await response.prepare(request)
            if head:
                await response.write(head)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)  # each chunk (each event) goes out as it arrives
            await response.write_eof()
        except (ConnectionResetError, aiohttp.ClientError, TimeoutError) as error:
            # the VC went away, or the BN broke off: the connection ends; nothing else to do
            log.debug("relay of %s ended: %s", request.path, error)
            if request.transport is not None:
                request.transport.close()  # never end a broken body as if it were complete
        finally:
            if events:
                self.streams_open -= 1
        return response
