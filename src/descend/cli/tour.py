"""``descend tour``: run every topic of the notes live and write one self-contained page.

:func:`register` adds the command to a Typer app (the main ``descend`` CLI
calls it)::

    import typer
    from descend.cli.tour import register
    app = typer.Typer()
    register(app)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..tour.core import DEPENDS, HELD, NOT_HELD, PAGE, Section, Topic, topic_ids, tour

STYLE = {HELD: "bold green", NOT_HELD: "bold red", DEPENDS: "bold yellow"}


def tour_cmd(
    quick: Annotated[bool, typer.Option("--quick", help="small budgets: the whole tour in under 30 s")] = False,
    out: Annotated[Path, typer.Option(help="folder for index.html (created)")] = Path("runs/tour"),
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="seed of models, data orders and random starts")] = 0,
    only: Annotated[str | None, typer.Option(help="comma-separated topic ids to run (default: all); their page is "
                                                  "OUT/only-<ids>.html, and OUT/index.html is left as it was")] = None,
) -> None:
    """Run every topic of the seed notes live and write one self-contained page, runs/tour/index.html.

    Each section runs its experiment, draws its figure, states the note's claim and judges it (held / did not hold / depends) by the numbers measured in this run. The full tour takes about 40 s of one CPU core (it runs on one torch thread), --quick about 22 s; a busy machine takes longer.

    Examples:

        descend tour

        descend tour --quick --out /tmp/tour

        descend tour --only momentum,newton

    A part of the tour (--only) is written to its own page, runs/tour/only-momentum-newton.html above,
    and never replaces the whole tour's index.html.
    """
    console = Console()
    chosen = None
    if only is not None:
        chosen = [s.strip() for s in only.split(",") if s.strip()]
        if not chosen:
            raise typer.BadParameter(f"needs at least one topic id, got {only!r}; topics: {', '.join(topic_ids())}",
                                     param_hint="--only")
        unknown = [s for s in chosen if s not in topic_ids()]
        if unknown:
            raise typer.BadParameter(f"unknown topic(s) {', '.join(unknown)}; topics: {', '.join(topic_ids())}",
                                     param_hint="--only")
    if out.exists() and not out.is_dir():
        raise typer.BadParameter(f"{out} is an existing file, not a folder; give a folder for index.html",
                                 param_hint="--out")
    try:  # (before the topics run: a folder that cannot be made would lose their work)
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise typer.BadParameter(f"cannot create the folder {str(out)!r} ({e.strerror or e})",
                                 param_hint="--out") from None
    mode = "quick" if quick else "full"
    console.print(f"[bold]descend tour[/bold] ({mode}, seed {seed}): every topic of the notes, measured live")
    status = console.status("starting")
    status.start()

    def progress(event: str, index: int, total: int, t: Topic, section: Section | None) -> None:
        if event == "start":
            status.update(f"[{index + 1}/{total}] {t.title} ...")
            return
        assert section is not None
        mark = f"[{STYLE.get(section.verdict, '')}]{section.verdict}[/]"
        err = " [red](error)[/red]" if section.error else ""
        console.print(f"  [{index + 1:>2}/{total}] {t.title}: {mark}{err} [dim]({section.seconds:.1f} s)[/dim]", soft_wrap=True)

    try:
        result = tour(out, quick=quick, seed=seed, only=chosen, progress=progress)
    finally:
        status.stop()
    table = Table(title=f"The notes' claims in this run ({result.seconds:.1f} s)")
    for col in ("#", "topic", "note", "verdict", "time"):
        table.add_column(col, justify="right" if col in ("#", "time") else "left")
    for i, s in enumerate(result.sections, 1):
        table.add_row(str(i), s.title, s.note, f"[{STYLE.get(s.verdict, '')}]{s.verdict}[/]", f"{s.seconds:.1f} s")
    console.print(table)
    counts = {v: sum(1 for s in result.sections if s.verdict == v) for v in (HELD, DEPENDS, NOT_HELD)}
    console.print(f"{counts[HELD]} held, {counts[DEPENDS]} depends, {counts[NOT_HELD]} did not hold.")
    console.print(f"Page written: {result.path}", soft_wrap=True, markup=False)
    if chosen is not None:  # (a part of the tour never replaces the whole tour's page)
        full = out / PAGE
        kept = f"{full} was left as it was" if full.exists() else f"the whole tour writes {full}"
        console.print(f"(--only: a page of {len(result.sections)} topic(s); {kept})", soft_wrap=True, markup=False)
    console.print(f"open {result.path}", soft_wrap=True, markup=False)
    errors = [s.id for s in result.sections if s.error]
    if errors:
        console.print(f"[red]these topics failed with an error: {', '.join(errors)}[/red]")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``tour`` command to ``app``."""
    app.command("tour")(tour_cmd)


__all__ = ["register", "tour_cmd"]
