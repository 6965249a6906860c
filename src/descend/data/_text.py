"""Delimited text tables as people export them: the encoding, the separator, decimal commas.

:func:`table` turns a file's bytes into a header and rows of stripped cells, each row with
its line in the file, and notes saying what was not plain (a separator other than a
comma, decimal commas, an encoding other than UTF-8). Whatever it cannot read unambiguously
it refuses, naming the file, what it found and what it reads:

* **Encoding**: UTF-8 (with or without a byte-order mark), UTF-16 with a byte-order mark
  (Excel's "Unicode text"), else Windows-1252 (Excel's "CSV" in Western Europe), with a note;
  a file holding NUL bytes is binary, not a table.
* **Separator**: ``,``, ``;``, tab or ``|``: the one that splits the header into more than
  one column and every line into as many (the header anchors it: ``1,5;2`` under ``a;b`` is
  two columns). When two do, the one under which more cells are numbers wins; a tie is refused.
  When none does, the one splitting the header into the most columns is taken, and the line
  that does not fit is reported by the caller.
* **Decimal commas** (``1,5``) are read as decimal points in a file separated by something
  else than commas, unless the file also holds numbers with a decimal point (``2.5``, or
  ``1.234`` meaning 1234): that mix is refused. In a comma-separated file a comma inside a
  (quoted) number cannot be told from a thousands separator, so it is refused too.
* A first line of numbers only is data, not a header: refused (descend needs column names).
* A first line ``sep=;`` (Excel writes one) names the separator and is not the header.
* Columns with an empty name and no value in any row (a separator at the end of every line)
  are left out, with a note.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path
from typing import NamedTuple

SEPARATORS = {",": "','", ";": "';'", "\t": "tabs", "|": "'|'"}
NUMBER_COMMA = re.compile(r"[+-]?(?:\d+,\d*|,\d+)(?:[eE][+-]?\d+)?")
NEWLINE = b"\n"
NUMBER_DOT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?")


class Text(NamedTuple):
    """A text table: its column names, its rows (stripped cells), each row's line in the file, notes."""

    header: list[str]
    rows: list[list[str]]
    lines: list[int]
    notes: list[str]


def table(path: Path) -> Text:
    """Read the delimited text file ``path`` (see the module docstring); ValueError naming it."""
    text, notes = _decode(path)
    sep, parsed = _separate(path, text)
    if sep != ",":
        notes.append(f"columns separated by {SEPARATORS[sep]}")
    (_, header), body = parsed[0], parsed[1:]
    header = [c.strip() for c in header]
    rows = [[c.strip() for c in r] for _, r in body]
    lines = [line for line, _ in body]
    if all(_number(c) for c in header):
        raise ValueError(
            f"data file {path}: its first line ({', '.join(header)}) holds only numbers, so the file has no "
            f"header row; descend reads column names from the first line: add one naming the columns"
        )
    empty = [j for j, name in enumerate(header) if not name and all(len(r) <= j or not r[j] for r in rows)]
    if empty and len(empty) < len(header):
        keep = [j for j in range(len(header)) if j not in empty]
        rows = [[r[j] for j in keep] if len(r) == len(header) else r for r in rows]  # (ragged: reported later)
        header = [header[j] for j in keep]
        notes.append(f"left out {len(empty)} empty column(s) without a name (a separator at the end of the lines)")
    rows, note = _decimal_commas(path, sep, header, rows, lines)
    notes += [note] if note else []
    return Text(header, rows, lines, notes)


def _decode(path: Path) -> tuple[str, list[str]]:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ValueError(f"data file {path} cannot be read ({err.strerror or err})") from None
    notes: list[str] = []
    utf16 = raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    encodings = {"utf-16": "UTF-16"} if utf16 else {"utf-8-sig": "UTF-8", "cp1252": "Windows-1252"}
    first: UnicodeDecodeError | None = None
    for encoding in encodings:
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError as err:
            first = first or err
    else:
        at = first.start if first is not None else 0
        line = raw[:at].count(NEWLINE) + 1
        raise ValueError(
            f"data file {path} is not a text file descend can read: byte 0x{raw[at]:02x} at offset {at} (line "
            f"{line}) is not {' or '.join(encodings.values())} text; save the table as UTF-8 text (Excel: 'CSV UTF-8')"
        )
    if "\x00" in text:
        raise ValueError(f"data file {path} holds NUL bytes: it is a binary file, not a text table")
    if encoding == "cp1252":
        notes.append("not UTF-8: read as Windows-1252 (Western European) text")
    return text, notes


def _parse(text: str, sep: str) -> list[tuple[int, list[str]]] | None:
    """The non-blank rows of ``text`` split at ``sep``, each with its (last) line number; None if unparsable."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    try:
        return [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    except csv.Error:
        return None


def _separate(path: Path, text: str) -> tuple[str, list[tuple[int, list[str]]]]:
    first = text.splitlines(keepends=True)[0] if text else ""
    declared = re.fullmatch(r"\s*sep=(.)\s*", first.strip("\r\n"))  # Excel's first line naming the separator
    if declared:
        sep = declared.group(1)
        if sep not in SEPARATORS:
            raise ValueError(f"data file {path}: its first line declares the separator {sep!r}; descend reads "
                             f"{', '.join(SEPARATORS.values())}")
        rows = _parse(text[len(first):], sep)
        if not rows:
            raise ValueError(f"data file {path} has only its sep= line; it needs a header row and one row per example")
        return sep, [(line + 1, r) for line, r in rows]
    parsed = {sep: rows for sep in SEPARATORS if (rows := _parse(text, sep)) is not None}
    if not parsed:
        raise ValueError(f"data file {path} is not a readable table (unbalanced quotes or a field too long)")
    if not next(iter(parsed.values())):
        raise ValueError(f"data file {path} is empty; it needs a header row and one row per example")
    width = {sep: len(rows[0][1]) for sep, rows in parsed.items()}
    fits = [sep for sep, rows in parsed.items() if width[sep] > 1 and all(len(r) == width[sep] for _, r in rows)]
    if len(fits) > 1:
        share = {sep: _numbers(parsed[sep][1:]) for sep in fits}
        best = max(share.values())
        if sum(v == best for v in share.values()) > 1:
            found = ", ".join(f"{SEPARATORS[s]} splits every line into {width[s]} columns" for s in fits)
            raise ValueError(
                f"data file {path}: cannot tell which character separates the columns ({found}); "
                f"save it with one separator (',' with '.' as the decimal point is read everywhere)"
            )
        fits = [s for s in fits if share[s] == best]
    sep = fits[0] if fits else max(parsed, key=lambda s: (width[s], s == ","))
    return sep, parsed[sep]


def _number(cell: str) -> bool:
    cell = cell.strip()
    if NUMBER_COMMA.fullmatch(cell):
        return True
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _numbers(rows: list[tuple[int, list[str]]]) -> int:
    return sum(_number(c) for _, r in rows for c in r)


def _first(header: list[str], rows: list[list[str]], lines: list[int], pattern: re.Pattern) -> str | None:
    for i, r in enumerate(rows):
        for j, cell in enumerate(r):
            if pattern.fullmatch(cell):
                name = header[j] if j < len(header) else f"#{j + 1}"
                return f"line {lines[i]}, column {name!r}: {cell!r}"
    return None


def _decimal_commas(path: Path, sep: str, header: list[str], rows: list[list[str]],
                    lines: list[int]) -> tuple[list[list[str]], str | None]:
    comma = _first(header, rows, lines, NUMBER_COMMA)
    if comma is None:
        return rows, None
    if sep == ",":
        raise ValueError(
            f"data file {path}: a number with a comma in a comma-separated file ({comma}): descend cannot tell "
            f"a decimal comma from a thousands separator; save the numbers with '.' as the decimal point and "
            f"no thousands separators"
        )
    dot = _first(header, rows, lines, NUMBER_DOT)
    if dot is not None:
        raise ValueError(
            f"data file {path} holds numbers with a decimal comma ({comma}) and numbers with a point ({dot}): "
            f"descend cannot tell which is the decimal separator (the point may separate thousands); save the "
            f"numbers with one decimal separator and no thousands separators"
        )
    fixed = [[c.replace(",", ".") if NUMBER_COMMA.fullmatch(c) else c for c in r] for r in rows]
    return fixed, "decimal commas read as decimal points (1,5 = 1.5)"
