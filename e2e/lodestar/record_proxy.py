"""A logging reverse proxy for the Beacon API: one upstream BN, one or more listening ports, each
recording every exchange to its own JSON-lines file.

    .venv/bin/python e2e/lodestar/record_proxy.py --upstream http://127.0.0.1:9596 \
        --listen 127.0.0.1:9601=vc0.jsonl --listen 127.0.0.1:9602=vc1.jsonl \
        [--genesis-time T --seconds-per-slot 6] [--max-body 65536]

One record per request ("kind": "http"): times (unix seconds: request in, upstream headers,
response done; slot and offset into the slot when the genesis time is known), method, path, query,
request headers and body (JSON decoded when it is JSON), response status, headers and body. Bodies
longer than --max-body characters are cut (marked "truncated"), except on the validator-duty
endpoints (/eth/*/validator/*, /beacon/pool/*, /beacon/blocks, states/*/validators), kept whole.

Server-sent events (/eth/v1/events) are streamed through chunk by chunk without any timeout: one
"sse_open" record when the upstream answers (Lodestar sends its headers only with the first
event), one "sse_event" record per event, one "sse_close" record at the end.

Throw-away tooling for learning what a real VC calls; not part of covalidator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-encoding",
}
WHOLE_BODY_MARKERS = ("/validator/", "/beacon/pool/", "/beacon/blocks", "/validators", "/config/spec")


def keep_whole(path: str) -> bool:
    return any(marker in path for marker in WHOLE_BODY_MARKERS)


def decode_body(raw: bytes, content_type: str, whole: bool, max_body: int) -> Any:
    if not raw:
        return None
    if "json" in content_type or raw[:1] in (b"{", b"["):
        try:
            text = raw.decode()
            if whole or len(text) <= max_body:
                return json.loads(text)
            return {"truncated": True, "length": len(text), "head": text[:max_body]}
        except (UnicodeDecodeError, json.JSONDecodeError):
            pass
    if "octet-stream" in content_type or "ssz" in content_type:
        return {"ssz_hex": raw[: (len(raw) if whole else max_body // 2)].hex(), "length": len(raw)}
    text = raw.decode(errors="replace")
    if whole or len(text) <= max_body:
        return text
    return {"truncated": True, "length": len(text), "head": text[:max_body]}


class Recorder:
    def __init__(self, path: Path, genesis_time: float | None, seconds_per_slot: float) -> None:
        self.file = path.open("a", buffering=1)
        self.genesis_time = genesis_time
        self.seconds_per_slot = seconds_per_slot
        self.seq = 0

    def when(self, t: float) -> dict[str, Any]:
        if self.genesis_time is None:
            return {}
        since = t - self.genesis_time
        slot = int(since // self.seconds_per_slot)
        return {"slot": slot, "slot_offset": round(since - slot * self.seconds_per_slot, 3)}

    def write(self, record: dict[str, Any]) -> None:
        self.seq += 1
        record = {"seq": self.seq, **record}
        self.file.write(json.dumps(record, separators=(",", ":")) + "\n")


def make_app(upstream: str, recorder: Recorder, max_body: int) -> web.Application:
    session: aiohttp.ClientSession | None = None

    async def on_startup(app: web.Application) -> None:
        nonlocal session
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=None),
            auto_decompress=True,
            connector=aiohttp.TCPConnector(limit=0),
        )

    async def on_cleanup(app: web.Application) -> None:
        if session is not None:
            await session.close()

    async def handle(request: web.Request) -> web.StreamResponse:
        assert session is not None
        t_req = time.time()
        raw_req = await request.read()
        path = request.path
        whole = keep_whole(path)
        req_headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        record: dict[str, Any] = {
            "kind": "http",
            "t_req": round(t_req, 4),
            **recorder.when(t_req),
            "method": request.method,
            "path": path,
            "query": request.query_string,
            "req_headers": req_headers,
            "req_body": decode_body(raw_req, request.headers.get("Content-Type", ""), True, max_body),
        }
        url = upstream + str(request.rel_url)
        try:
            upstream_resp = await session.request(
                request.method,
                url,
                headers=req_headers,
                data=raw_req if raw_req else None,
                allow_redirects=False,
                skip_auto_headers=("Accept-Encoding", "Content-Type", "User-Agent"),
            )
        except Exception as exc:  # upstream unreachable: the VC sees a 502
            record.update(status=502, error=repr(exc), t_end=round(time.time(), 4))
            recorder.write(record)
            return web.Response(status=502, text=f"proxy: upstream error {exc!r}")
        t_head = time.time()
        resp_headers = {k: v for k, v in upstream_resp.headers.items() if k.lower() not in HOP_BY_HOP}
        record.update(status=upstream_resp.status, t_head=round(t_head, 4), resp_headers=resp_headers)
        content_type = upstream_resp.headers.get("Content-Type", "")

        if "text/event-stream" in content_type:
            recorder.write({**record, "kind": "sse_open", "t_first_byte_wait": round(t_head - t_req, 3)})
            response = web.StreamResponse(status=upstream_resp.status, headers=resp_headers)
            await response.prepare(request)
            buffer = b""
            reason = "upstream closed"
            try:
                async for chunk in upstream_resp.content.iter_any():
                    await response.write(chunk)
                    buffer += chunk
                    while b"\n\n" in buffer:
                        block, buffer = buffer.split(b"\n\n", 1)
                        event: dict[str, Any] = {}
                        for line in block.decode(errors="replace").splitlines():
                            key, _, value = line.partition(":")
                            event[key.strip() or "comment"] = value.strip()
                        t_ev = time.time()
                        data = event.get("data")
                        with contextlib.suppress(json.JSONDecodeError):
                            data = json.loads(data) if data else data
                        recorder.write(
                            {
                                "kind": "sse_event",
                                "t": round(t_ev, 4),
                                **recorder.when(t_ev),
                                "path": path,
                                "query": request.query_string,
                                "event": event.get("event"),
                                "data": data,
                            }
                        )
            except (ConnectionResetError, asyncio.CancelledError, aiohttp.ClientError) as exc:
                reason = repr(exc)
            finally:
                upstream_resp.release()
                recorder.write(
                    {"kind": "sse_close", "t": round(time.time(), 4), "path": path, "reason": reason}
                )
            return response

        raw_resp = await upstream_resp.read()
        upstream_resp.release()
        t_end = time.time()
        record.update(
            t_end=round(t_end, 4),
            duration_ms=round((t_end - t_req) * 1000, 1),
            resp_body=decode_body(raw_resp, content_type, whole, max_body),
        )
        try:
            response = web.Response(status=upstream_resp.status, body=raw_resp, headers=resp_headers)
            await response.prepare(request)
            await response.write_eof()
        except (ConnectionResetError, aiohttp.ClientConnectionError) as exc:
            record["client_gone"] = repr(exc)
        recorder.write(record)
        return response

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--listen", action="append", required=True, help="HOST:PORT=FILE.jsonl")
    ap.add_argument("--genesis-time", type=float)
    ap.add_argument("--seconds-per-slot", type=float, default=6)
    ap.add_argument("--max-body", type=int, default=65536)
    args = ap.parse_args()
    runners = []
    for spec in args.listen:
        addr, _, out = spec.partition("=")
        host, _, port = addr.rpartition(":")
        recorder = Recorder(Path(out), args.genesis_time, args.seconds_per_slot)
        app = make_app(args.upstream.rstrip("/"), recorder, args.max_body)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=False, shutdown_timeout=2.0)
        await runner.setup()
        await web.TCPSite(runner, host, int(port)).start()
        runners.append(runner)
        print(f"record_proxy: {addr} -> {args.upstream}, recording to {out}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for runner in runners:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
