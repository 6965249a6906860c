"""``descend serve``: the lab page and its JSON API on a local port.

The main CLI registers the command with one line::

    from descend.cli.serve import register
    register(app)
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Annotated

import typer

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (127.0.0.0/8, ::1 or localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cannot_listen(host: str, port: int) -> str | None:
    """Why the lab could not listen on ``host``:``port``, or None when it can.

    uvicorn's own words name neither the address nor the way out ("[Errno -2] Name or service
    not known"), and come after the lab has announced its address.
    """
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        return f"--host {host!r} is neither an address nor a name this machine can resolve ({reason})"
    family, kind, proto, _, address = info
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use (another server?); pick another with --port"
            if e.errno == errno.EADDRNOTAVAIL:
                return f"--host {host} is not an address of this machine"
            if e.errno == errno.EACCES:
                return f"port {port} needs administrator rights; pick one above 1023 with --port"
            return f"cannot listen on {host}:{port}: {e.strerror or e}"
    return None


def serve(
    host: Annotated[str, typer.Option(help="Address to bind; the default only accepts connections from this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    max_steps: Annotated[int, typer.Option(min=1, help="Most steps one run may take.")] = 5000,
    max_runs: Annotated[int, typer.Option(min=1, help="Most runs (trajectories) per request.")] = 8,
    time_limit: Annotated[float, typer.Option(min=0.1, help="Seconds of computing per request.")] = 20.0,
    log_level: Annotated[str, typer.Option(help="uvicorn log level: critical, error, warning, info, debug.")] = "info",
) -> None:
    """Serve the lab: pick a landscape and optimizers, click a start, watch the paths race.

    Open http://127.0.0.1:8000/ in a browser; the API's schema is at /openapi.json.

    Example: descend serve --port 8000
    """
    import uvicorn
    from uvicorn.config import LOG_LEVELS

    from ..web.app import Limits, create_app

    if log_level.lower() not in LOG_LEVELS:
        typer.secho(
            f"error: --log-level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}",
            fg=typer.colors.RED, err=True,
        )
        raise typer.Exit(code=2)
    problem = cannot_listen(host, port)
    if problem:
        typer.secho(f"error: {problem}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    if not is_loopback(host):
        typer.secho(
            f"warning: binding to {host} makes the lab reachable from other machines",
            fg=typer.colors.YELLOW, err=True,
        )
    try:
        limits = Limits(max_steps=max_steps, max_runs=max_runs, time_limit_s=time_limit)
    except ValueError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"descend lab on http://{shown}:{port}/  (Ctrl+C stops it)")
    uvicorn.run(create_app(limits), host=host, port=port, log_level=log_level.lower())


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""
    app.command("serve")(serve)


__all__ = ["register", "serve", "is_loopback", "cannot_listen"]
