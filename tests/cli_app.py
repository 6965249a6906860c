"""CLI tests' two ways in: the real ``descend`` command in a subprocess (:func:`descend`), and a Typer
app with one command group registered the way the main CLI does it (:func:`invoke`, in process)."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

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


ROOT = Path(__file__).resolve().parents[1]


def descend(*args: object, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real ``descend`` command of this environment (the entry point itself when the script is not
    beside python), importing this checkout's code, on a 200-column terminal."""
    script = Path(sys.executable).with_name("descend")
    cmd = [str(script)] if script.exists() else [sys.executable, "-c", "from descend.cli import app; app()"]
    env = {**os.environ, "COLUMNS": "200",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([*cmd, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=timeout)
