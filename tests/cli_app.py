"""A Typer app with one command group registered the way the main CLI does it, for CLI tests."""

from collections.abc import Callable

import typer
from typer.testing import CliRunner, Result


def app_with(register: Callable[[typer.Typer], None]) -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """descend"""

    register(app)  # the one line the main CLI uses
    return app


def invoke(register: Callable[[typer.Typer], None], *args: str) -> Result:
    return CliRunner().invoke(app_with(register), list(args), env={"COLUMNS": "200"})
