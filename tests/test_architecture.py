"""The layers of DESIGN.md, checked by reading the source (AST), not by importing it.

* Domain packages (optim, schedules, landscapes, data, models, train, lab)
  never import typer, rich, descend.plots, descend.tour, descend.web or
  descend.cli: not at the top, not inside a function.
* No import cycle between packages (every import counts, lazy ones too).
* No source file in src/descend over 600 lines.
* ``descend --help`` is drawn without importing torch, and the CLI's table
  of lazily loaded commands says what the command modules register.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "descend"
DOMAIN = ("optim", "schedules", "landscapes", "data", "models", "train", "lab")
FORBIDDEN_OUTSIDE = ("typer", "rich")
FORBIDDEN_INSIDE = ("plots", "tour", "web", "cli")
# docs/architecture.md's table: a package imports only from its own row or the rows before it
LAYERS = (
    ("spec",),
    ("optim", "schedules", "landscapes", "data", "models"),
    ("train", "lab"),
    ("plots", "tour", "web"),
    ("cli",),
)
MAX_LINES = 600
SOURCE_SUFFIXES = (".py", ".js", ".html", ".css")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    """Whether ``descend.x.y`` is a module or package of the source tree."""
    rel = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def imports(path: Path) -> list[tuple[str, int]]:
    """Every module ``path`` imports, at any depth, as (absolute dotted name, line)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            out.append((target, node.lineno))
            for alias in node.names:  # `from .. import plots` imports the subpackage
                if is_module(f"{target}.{alias.name}") and target.startswith("descend"):
                    out.append((f"{target}.{alias.name}", node.lineno))
    return out


def python_files() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def package_of(dotted: str) -> str | None:
    """``descend.train.config`` -> ``train``; the root package and outside modules -> None."""
    parts = dotted.split(".")
    if parts[0] != "descend" or len(parts) < 2:
        return None
    return parts[1]


def layer_violations() -> list[str]:
    found = []
    for path in python_files():
        pkg = package_of(module_name(path))
        if pkg not in DOMAIN:
            continue
        for target, line in imports(path):
            top = target.split(".")[0]
            inner = package_of(target)
            if top in FORBIDDEN_OUTSIDE or inner in FORBIDDEN_INSIDE:
                found.append(f"{path.relative_to(ROOT.parents[1])}:{line} imports {target}")
    return sorted(set(found))


def package_graph() -> dict[str, dict[str, str]]:
    """package -> {package it imports: one place that does (file:line)}; the root package left out."""
    graph: dict[str, dict[str, str]] = defaultdict(dict)
    for path in python_files():
        src = package_of(module_name(path))
        if src is None:
            continue
        for target, line in imports(path):
            dst = package_of(target)
            if dst is not None and dst != src:
                graph[src].setdefault(dst, f"{path.relative_to(ROOT.parents[1])}:{line}")
    return graph


def cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """The strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted({*graph, *(w for edges in graph.values() for w in edges)}):
        if v not in index:
            visit(v)
    return sorted(out)


def test_the_import_reader_sees_every_kind_of_import(tmp_path) -> None:
    # the reader itself must find lazy, relative and `from .. import pkg` imports
    path = ROOT / "train" / "_probe_for_test.py"
    path.write_text(
        "import typer\n"
        "def f():\n"
        "    from ..plots import lab\n"
        "    from .. import web, optim\n"
        "    import rich.console\n"
        "    from . import config\n"
    )
    try:
        got = {target for target, _ in imports(path)}
        assert {"typer", "descend.plots", "descend.plots.lab", "descend.web", "descend.optim", "rich.console",
                "descend.train", "descend.train.config", "descend"} <= got
        mine = [v for v in layer_violations() if "_probe_for_test" in v]
        assert sorted(v.split(" imports ")[1] for v in mine) == [
            "descend.plots", "descend.plots.lab", "descend.web", "rich.console", "typer"
        ]
    finally:
        path.unlink()
    assert cycles({"a": {"b": ""}, "b": {"c": ""}, "c": {"a": ""}, "d": {"a": ""}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": ""}, "b": {}}) == []


def test_domain_packages_never_import_the_layers_above() -> None:
    found = layer_violations()
    assert not found, "domain packages reach up:\n" + "\n".join(found)


def test_no_import_cycle_between_packages() -> None:
    graph = package_graph()
    found = cycles(graph)
    lines = []
    for component in found:
        members = set(component)
        for src in component:
            for dst, where in sorted(graph[src].items()):
                if dst in members:
                    lines.append(f"{src} -> {dst} ({where})")
    assert not found, f"package cycles {found}:\n" + "\n".join(lines)


def test_imports_point_down_the_layer_table() -> None:
    row = {pkg: i for i, pkgs in enumerate(LAYERS) for pkg in pkgs}
    packages = {package_of(module_name(p)) for p in python_files()} - {None}
    assert packages <= set(row), f"packages missing from LAYERS: {sorted(packages - set(row))}"
    upward = [
        f"{src} -> {dst} ({where})"
        for src, edges in sorted(package_graph().items())
        for dst, where in sorted(edges.items())
        if dst in row and row[dst] > row[src]
    ]
    assert not upward, "imports that point up the layer table:\n" + "\n".join(upward)


def test_no_source_file_over_600_lines() -> None:
    long = []
    for path in sorted(ROOT.rglob("*")):
        if path.suffix in SOURCE_SUFFIXES and path.is_file():
            n = len(path.read_text().splitlines())
            if n > MAX_LINES:
                long.append(f"{path.relative_to(ROOT.parents[1])}: {n} lines")
    assert not long, f"files over {MAX_LINES} lines:\n" + "\n".join(long)


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from descend.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'], terminal_width=200)\n"
        "assert r.exit_code == 0, r.output\n"
        "assert ' lr-find ' in r.output and ' train ' in r.output, r.output\n"
        "heavy = sorted(m for m in ('torch', 'sklearn', 'matplotlib', 'numpy') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"descend --help imported {done.stdout.strip()}"


def test_the_lazy_command_table_says_what_the_modules_register() -> None:
    from descend.cli import COMMANDS, app, load

    registered = {}
    for module in sorted({module for module, _ in COMMANDS.values()}):
        for name, command in load(module).items():
            registered[name] = (module, (command.help or "").strip().split("\n\n")[0].replace("\n", " "))
    assert registered == COMMANDS
    import typer

    group = typer.main.get_command(app)
    assert [n for n in group.list_commands(None) if n in COMMANDS] == list(COMMANDS)  # type: ignore[arg-type]


@pytest.mark.parametrize("args", [["train", "--help"], ["race", "--help"], ["schedule", "--help"]])
def test_a_lazy_command_shows_its_own_help(args) -> None:
    from typer.testing import CliRunner

    from descend.cli import app

    r = CliRunner().invoke(app, args, terminal_width=200)
    assert r.exit_code == 0, r.output
    assert f"Usage: descend {args[0]} [OPTIONS]" in " ".join(r.output.split())
    assert "Examples:" in r.output or "Example" in r.output
