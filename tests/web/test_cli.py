"""``descend serve``: registered on any Typer app, loopback by default, limits passed through."""

from __future__ import annotations

import socket

import typer
from typer.testing import CliRunner

from descend.cli import serve as serve_module
from descend.cli.serve import is_loopback, register
from tests.cli_app import descend


def make_app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # a second command keeps Typer from collapsing the group
        """Placeholder."""

    return app


def test_serve_defaults_to_localhost_8000(monkeypatch):
    import uvicorn

    calls = {}

    def fake_run(app, host, port, log_level):
        calls.update(app=app, host=host, port=port, log_level=log_level)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setattr(serve_module, "cannot_listen", lambda host, port: None)   # whatever holds port 8000 here
    result = CliRunner().invoke(make_app(), ["serve"])
    assert result.exit_code == 0, result.output
    assert calls["host"] == "127.0.0.1" and calls["port"] == 8000
    assert calls["app"].state.limits.max_steps == 5000
    assert "http://127.0.0.1:8000/" in result.output


def test_serve_options(monkeypatch):
    import uvicorn

    calls = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, log_level: calls.update(app=app, host=host, port=port))
    monkeypatch.setattr(serve_module, "cannot_listen", lambda host, port: None)
    result = CliRunner().invoke(make_app(), ["serve", "--port", "9123", "--max-steps", "300", "--time-limit", "2"])
    assert result.exit_code == 0, result.output
    assert calls["port"] == 9123
    assert calls["app"].state.limits.max_steps == 300 and calls["app"].state.limits.time_limit_s == 2.0


def test_serve_help_and_bad_port():
    runner = CliRunner()
    help_text = runner.invoke(make_app(), ["serve", "--help"]).output
    assert "--host" in help_text and "--port" in help_text
    assert runner.invoke(make_app(), ["serve", "--port", "0"]).exit_code != 0


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_serve_says_why_it_cannot_listen():
    # uvicorn said "[Errno -2] Name or service not known" (no host named) or "address already in
    # use", both after the lab had announced its address, and exited with 3
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        busy = descend("serve", "--port", str(port))
    assert busy.returncode == 2 and "descend lab on" not in busy.stdout
    assert f"error: port {port} on 127.0.0.1 is in use (another server?); pick another with --port" in busy.stderr
    bad = descend("serve", "--host", "999.1.1.1")
    assert bad.returncode == 2 and "descend lab on" not in bad.stdout
    assert "error: --host '999.1.1.1' is neither an address nor a name this machine can resolve" in bad.stderr
