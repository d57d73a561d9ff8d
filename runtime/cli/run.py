"""`covalidator run`: one co-validator between its VC and its BN, until SIGTERM.

Every flag can also be given as an environment variable, COVALIDATOR_ + the flag's name in capitals
with dashes as underscores (`--beacon-node` -> COVALIDATOR_BEACON_NODE); a flag given on the command
line wins. Lists (beacon nodes) are comma-separated in one value or repeated flags.

Exit codes: 0 stopped by a signal; 2 a configuration error (one line on stderr: a missing or invalid
file, a BN on another chain, a port in use); 1 the node failed while running.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click

EXIT_BAD_INPUT = 2


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


class OneLineErrors(click.Command):
    """Usage errors as one line (`error: ...`) with exit code 2, like every other configuration error."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:
            fail(error.format_message().replace("\n", " "))


def _urls(values: tuple[str, ...], what: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for value in values for u in value.split(",") if u.strip())
    for url in urls:
        if not url.startswith(("http://", "https://")) or len(url.split("//", 1)[1]) == 0:
            fail(f"{what} must be an http(s) URL, got {url.split('//', 1)[0]}//...")
        if "?" in url or "#" in url:  # API paths are appended to it: a query would end up in the middle
            fail(f"{what}: a beacon node URL cannot have a query or fragment (put a key in its path)")
    return urls


def _token(path: Path) -> str:
    from covalidator.runtime.http_guard import read_token

    try:
        return read_token(str(path))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        fail(f"--vc-api-token-file {path}: {getattr(error, 'strerror', None) or error}")


def _env(name: str) -> str:
    return f"COVALIDATOR_{name}"


@click.command("run", cls=OneLineErrors)
@click.option(
    "--lock",
    "lock",
    type=click.Path(path_type=Path),
    required=True,
    envvar=_env("LOCK"),
    help="The cluster lock (cluster-lock.json).",
)
@click.option(
    "--node-dir",
    type=click.Path(path_type=Path),
    required=True,
    envvar=_env("NODE_DIR"),
    help="This node's folder as create-cluster wrote it (identity-key.pem, validator_keys/).",
)
@click.option(
    "--beacon-node",
    "beacon_nodes",
    multiple=True,
    required=True,
    envvar=_env("BEACON_NODE"),
    help="Beacon node URL(s), comma-separated or repeated; raced, the first good answer wins.",
)
@click.option(
    "--fallback-beacon-node",
    "fallbacks",
    multiple=True,
    envvar=_env("FALLBACK_BEACON_NODE"),
    help="Beacon node URL(s) asked when no primary answers (timeout, syncing, 5xx).",
)
@click.option(
    "--validator-api",
    default="127.0.0.1:3600",
    show_default=True,
    envvar=_env("VALIDATOR_API"),
    help="HOST:PORT the validator client connects to (as if it were its beacon node).",
)
@click.option(
    "--p2p",
    default=None,
    envvar=_env("P2P"),
    help="HOST:PORT to listen on for peers. Default: the port of this node's address in the lock, on "
    "0.0.0.0 (on the lock's host when that is a loopback address).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    envvar=_env("DATA_DIR"),
    help="Folder for the store (slashing DB, decided values) and the trace. Default: NODE_DIR/data.",
)
@click.option(
    "--round-ms",
    type=click.IntRange(min=50),
    default=1000,
    show_default=True,
    envvar=_env("ROUND_MS"),
    help="QBFT round timeout (the first round; later rounds grow). Every node of a cluster must use the same.",
)
@click.option(
    "--bn-wait",
    type=click.FloatRange(min=0),
    default=None,
    envvar=_env("BN_WAIT"),
    help="Seconds to wait for a beacon node at start before giving up (default: wait until one answers).",
)
@click.option(
    "--monitoring",
    default="127.0.0.1:3620",
    show_default=True,
    envvar=_env("MONITORING"),
    help="HOST:PORT for /metrics (Prometheus), /livez, /readyz and the status; 'off' serves none.",
)
@click.option(
    "--signer-api",
    default=None,
    envvar=_env("SIGNER_API"),
    help="HOST:PORT to serve the Remote Signing (Web3Signer) API on: signer mode. The node decrypts its "
    "share keystores and the VC, started with this URL as its external signer, holds no key. Off by default.",
)
@click.option(
    "--signer-api-allow-remote",
    is_flag=True,
    default=False,
    envvar=_env("SIGNER_API_ALLOW_REMOTE"),
    help="Serve the signer API on a non-loopback address (anyone who reaches it can ask for signatures).",
)
@click.option(
    "--vc-api-vhosts",
    default="",
    envvar=_env("VC_API_VHOSTS"),
    help="Comma-separated Host names the validator and signer APIs accept besides IP addresses and "
    "localhost (a Docker service name, say); '*' accepts any. Guards against DNS rebinding.",
)
@click.option(
    "--vc-api-token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    envvar=_env("VC_API_TOKEN_FILE"),
    help="A file holding a token every request to the validator and signer APIs must carry "
    "(Authorization: Bearer TOKEN, or basic auth with TOKEN as password: http://vc:TOKEN@host:port).",
)
@click.option(
    "--p2p-tls/--p2p-no-tls",
    default=True,
    show_default=True,
    envvar=_env("P2P_TLS"),
    help="Peer traffic over TLS 1.3, each peer's certificate pinned to its identity key in the lock. "
    "Every node of a cluster must use the same.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    envvar=_env("LOG_LEVEL"),
)
@click.option(
    "--log-format",
    type=click.Choice(["keyvalue", "json"]),
    default="keyvalue",
    show_default=True,
    envvar=_env("LOG_FORMAT"),
    help="One line per record: `message key=value ...`, or one JSON object.",
)
def run(
    lock: Path,
    node_dir: Path,
    beacon_nodes: tuple[str, ...],
    fallbacks: tuple[str, ...],
    validator_api: str,
    p2p: str | None,
    data_dir: Path | None,
    round_ms: int,
    bn_wait: float | None,
    monitoring: str,
    signer_api: str | None,
    signer_api_allow_remote: bool,
    vc_api_vhosts: str,
    vc_api_token_file: Path | None,
    p2p_tls: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Run one co-validator: the VC-facing Beacon API, peers, and the BN client, until SIGTERM."""
    import asyncio

    from covalidator.runtime.logs import setup_logging
    from covalidator.runtime.node_app import Settings, parse_host_port, serve
    from covalidator.runtime.node_setup import ConfigError

    primaries = _urls(beacon_nodes, "--beacon-node")
    if not primaries:
        fail("--beacon-node needs at least one URL")
    try:
        settings = Settings(
            lock=lock,
            node_dir=node_dir,
            beacon_nodes=primaries,
            fallback_beacon_nodes=_urls(fallbacks, "--fallback-beacon-node"),
            validator_api=parse_host_port(validator_api, "--validator-api"),
            p2p=None if p2p is None else parse_host_port(p2p, "--p2p"),
            data_dir=data_dir,
            round_ms=round_ms,
            bn_wait_s=bn_wait,
            monitoring=None
            if monitoring.strip().lower() == "off"
            else parse_host_port(monitoring, "--monitoring"),
            signer_api=None if signer_api is None else parse_host_port(signer_api, "--signer-api"),
            signer_api_remote=signer_api_allow_remote,
            vc_api_vhosts=tuple(h.strip() for h in vc_api_vhosts.split(",") if h.strip()),
            vc_api_token=None if vc_api_token_file is None else _token(vc_api_token_file),
            p2p_tls=p2p_tls,
        )
    except ConfigError as error:
        fail(str(error))
    if not lock.is_file():
        fail(f"{lock}: no such file (--lock)")
    if not node_dir.is_dir():
        fail(f"{node_dir}: no such folder (--node-dir)")
    setup_logging(log_level, node=node_dir.name, json_lines=log_format == "json")
    try:
        code = asyncio.run(serve(settings))
    except ConfigError as error:
        fail(str(error))
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)
