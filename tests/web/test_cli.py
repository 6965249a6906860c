"""``descend serve``: registered on any Typer app, loopback by default, limits passed through."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from descend.cli.serve import is_loopback, register


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
    result = CliRunner().invoke(make_app(), ["serve"])
    assert result.exit_code == 0, result.output
    assert calls["host"] == "127.0.0.1" and calls["port"] == 8000
    assert calls["app"].state.limits.max_steps == 5000
    assert "http://127.0.0.1:8000/" in result.output


def test_serve_options(monkeypatch):
    import uvicorn

    calls = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, log_level: calls.update(app=app, host=host, port=port))
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
