"""Your own data: a CSV file with a target column, or an ``.npz`` file with arrays ``X`` and ``y``.

:func:`descend.data.load` reads a path the way it reads a bundled name: the
same seeded (stratified) split, standardization fitted on the training split
only, and tensors of the same shapes and dtypes::

    data.load("wine.csv", target="target")        # CSV: header row, numeric features
    data.load("points.npz")                        # arrays X (n, d) and y (n,) or (n, m)

**Text tables** (``.csv``, ``.tsv``, ``.txt``) need a header row naming the
columns; the separator (``,``, ``;``, tab or ``|``), decimal commas
(``1,5`` in a ``;``-separated file) and the encoding (UTF-8, UTF-16 with a
byte-order mark, else Windows-1252) are found from the file, and what is
ambiguous is refused (see :mod:`descend.data._text`). Blank lines are skipped;
line numbers in messages are the file's.

**The task** follows the target's values: integers or strings are class
labels (classification; the classes are the sorted distinct values, mapped to
0..k-1 and kept as ``class_names``), numbers with a fraction are regression.
Integer targets with more than 20 distinct values and fewer than 5 rows per
value on average are refused without ``task`` (they look like a quantity).
``task="classification"`` or ``task="regression"`` overrides that (regression
needs numeric targets).

**Refusals** name the file, the column and the problem: a target that is not
there, a feature that is not numeric, a missing, NaN or infinite value, a value
beyond the tensors' dtype (float32: 3.4e38), too few rows for the split, a
target with a single class.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from . import _text
from ._split import split_sizes

TEXT = (".csv", ".tsv", ".txt")  # delimited text: the separator is found (see _text)
SUFFIXES = (*TEXT, ".npz")
TASKS = ("classification", "regression")
# integer targets with more distinct values than this, and fewer rows than MIN_PER_CLASS per value on
# average, are not taken for class labels without task= (diabetes' progression cast to int: 214 in 442)
MANY_CLASSES = 20
MIN_PER_CLASS = 5
MISSING = {"", "nan", "na", "n/a", "null", "none", "?"}


class Table(NamedTuple):
    """A file's contents before splitting: features, targets, their names and the task."""

    X: np.ndarray  # (n, d) float64
    y: np.ndarray  # (n,) int64 classes, or (n, m) float64 targets
    task: str
    feature_names: list[str]
    class_names: list[str] | None
    how: str  # how the task was decided, for messages
    notes: tuple[str, ...] = ()  # how the file was read, where it was not plain (separator, decimal commas)


def is_path(name: Any) -> bool:
    """Whether ``name`` names a data file (a ``.csv``/``.tsv``/``.txt``/``.npz`` suffix, a path, or an existing
    file or folder, which :func:`read` then refuses by name)."""
    if isinstance(name, Path):
        return True
    text = str(name)
    return Path(text).suffix.lower() in SUFFIXES or ("/" in text or "\\" in text) or Path(text).exists()


def read(path: str | Path, target: str | None = None, task: str | None = None) -> Table:
    """Read ``path`` (CSV or npz) into a :class:`Table`; ValueError naming the file and the problem."""
    path = Path(path)
    if isinstance(task, str):
        task = task.strip().lower()
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)} (or None to infer it), got {task!r}")
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "not found"
        raise ValueError(f"data file {path}: {what}; give a .csv file (with --target) or an .npz file with arrays X and y")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        X, raw, names, column, notes = _read_npz(path, target)
    elif suffix in TEXT:
        X, raw, names, column, notes = _read_csv(path, target)
    else:
        advice = " (one array: save X and y together, np.savez(path, X=X, y=y))" if suffix == ".npy" else ""
        raise ValueError(
            f"data file {path}: unknown kind {suffix or '(no suffix)'!r}; descend reads {', '.join(TEXT)} "
            f"(delimited text) and .npz files{advice}"
        )
    y, kind, classes, how = _targets(path, column, raw, task)
    if kind == "classification" and len(classes) < 2:
        raise ValueError(
            f"data file {path}: target {column!r} has a single class ({classes[0]!r} in all {len(y)} rows); "
            f"classification needs at least 2 classes"
        )
    return Table(X, y, kind, names, classes, how, tuple(notes))


def describe(name: str, table: Table, shown: int = 10) -> str:
    """One line saying what was read: rows, features, classes (with their rows) or targets, the task, notes."""
    n, d = table.X.shape
    if table.class_names is not None:
        counts = np.bincount(table.y, minlength=len(table.class_names))
        listed = [f"{c}: {k}" for c, k in zip(table.class_names[:shown], counts[:shown])]
        more = ", ..." if len(table.class_names) > shown else ""
        what = f"{len(table.class_names)} classes ({', '.join(listed)}{more})"
    else:
        what = f"{table.y.shape[1]} target(s)"
    notes = "".join(f"; {note}" for note in table.notes)
    return f"{name}: {n} rows, {d} features, {what}; task {table.task} ({table.how}){notes}"


# ---------------------------------------------------------------------------- CSV


def _read_csv(path: Path, target: str | None) -> tuple[np.ndarray, np.ndarray, list[str], str, list[str]]:
    header, body, lines, notes = _text.table(path)
    if target is None:
        raise ValueError(
            f"data file {path}: name the target column with --target (target=...); columns: {', '.join(header)}"
        )
    if target.strip() not in header:
        alone = "" if len(header) > 1 else (
            f" (the first line is one column: descend separates columns at {', '.join(_text.SEPARATORS.values())})")
        raise ValueError(
            f"data file {path} has no column {target!r} (the target); columns: {', '.join(header)}{alone}")
    target = target.strip()
    if header.count(target) > 1:
        raise ValueError(f"data file {path} has {header.count(target)} columns named {target!r}; rename them")
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise ValueError(
                f"data file {path}, line {lines[i]}: {len(r)} values, but the header has {len(header)} columns"
            )
    if not body:
        raise ValueError(f"data file {path} has a header but no rows")
    t = header.index(target)
    names = [h for j, h in enumerate(header) if j != t]
    if not names:
        raise ValueError(f"data file {path} has only the target column {target!r}; it needs at least one feature")
    X = np.empty((len(body), len(names)), dtype=np.float64)
    for j, (col, name) in enumerate(((j, h) for j, h in enumerate(header) if j != t)):
        cells = [r[col] for r in body]
        for i, cell in enumerate(cells):
            try:
                v = float(cell)
            except ValueError:
                if cell.lower() in MISSING:
                    _missing(path, name, cells, lines, "feature")
                grouped = any(ch.isdigit() for ch in cell) and any(ch in cell for ch in ".,' ")
                raise ValueError(
                    f"data file {path}: feature column {name!r} is not numeric (line {lines[i]}: {cell!r}); "
                    + ("write numbers without thousands separators; " if grouped else "")
                    + "encode it as numbers or drop the column"
                ) from None
            if not math.isfinite(v):
                _missing(path, name, cells, lines, "feature")
            X[i, j] = v
    for j, name in enumerate(names):
        if not name and len(X) > 1 and np.all(np.diff(X[:, j]) == 1):  # (a pandas to_csv without index=False)
            notes.append(f"feature {j + 1} has no name and counts {X[0, j]:g}, {X[1, j]:g}, ... like a row index: "
                         f"it is used as a feature (drop it if it is not one)")
    y = [r[t] for r in body]
    if any(_is_missing(c) for c in y):
        _missing(path, target, y, lines, "target")
    return X, np.array(y, dtype=object), names, target, notes


def _missing(path: Path, column: str, cells: list[str], lines: list[int], role: str) -> None:
    bad = [i for i, c in enumerate(cells) if _is_missing(c)]
    raise ValueError(
        f"data file {path}: {role} column {column!r} has {len(bad)} missing or NaN value(s) "
        f"(first on line {lines[bad[0]]}: {cells[bad[0]]!r}); fill or drop those rows"
    )


def _is_missing(cell: Any) -> bool:
    text = str(cell).strip().lower()
    if text in MISSING:
        return True
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return False


# ---------------------------------------------------------------------------- npz


def _read_npz(path: Path, target: str | None) -> tuple[np.ndarray, np.ndarray, list[str], str, list[str]]:
    key = target or "y"
    if not zipfile.is_zipfile(path):
        raise ValueError(f"data file {path} is not a readable .npz file (not a zip archive: corrupt or another format)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError:  # numpy's message suggests unpickling: never give that advice
        raise ValueError(
            f"data file {path} holds object (pickled) arrays, which descend does not load; save plain "
            f"numeric or text arrays (np.savez(path, X=X, y=y))"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"data file {path} is not a readable .npz file (corrupt: {type(err).__name__})") from None
    missing = [k for k in ("X", key) if k not in arrays]
    if missing:
        raise ValueError(
            f"data file {path} lacks array(s) {', '.join(missing)}; it holds {', '.join(arrays) or 'nothing'}; "
            f"descend needs X (features, n x d) and {key} (targets, n)"
        )
    X, y = arrays["X"], arrays[key]
    if X.ndim != 2 or not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError(f"data file {path}: X must be a 2-D numeric array (n, d), got shape {X.shape} of {X.dtype}")
    if y.ndim not in (1, 2) or len(y) != len(X):
        raise ValueError(
            f"data file {path}: {key} must hold one target per row of X ({len(X)}), got shape {y.shape}"
        )
    if len(X) == 0:
        raise ValueError(f"data file {path}: X has no rows (shape {X.shape}); it needs one row per example")
    X = X.astype(np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"data file {path}: X has {int(bad.sum())} NaN or infinite value(s) (first at row {i}, column {j}); "
            f"fill or drop those rows"
        )
    if y.dtype.kind in "fc" and not np.isfinite(y).all():
        raise ValueError(f"data file {path}: {key} has {int((~np.isfinite(y)).sum())} NaN or infinite value(s)")
    return X, y, [f"x{j}" for j in range(X.shape[1])], key, []


# ---------------------------------------------------------------------------- targets and the task


def _targets(path: Path, column: str, raw: np.ndarray, task: str | None) -> tuple[np.ndarray, str, list[str] | None, str]:
    """``(y, task, class_names, how)`` from the raw target values."""
    numbers: np.ndarray | None
    if raw.dtype == object:  # CSV cells (none missing: the reader refused those)
        try:
            numbers = np.array([float(c) for c in raw], dtype=np.float64)
            integral = all(_is_int(c) for c in raw)
        except ValueError:
            numbers, integral = None, False
    elif raw.dtype.kind in "iub":
        numbers, integral = raw.astype(np.float64), True
    elif raw.dtype.kind == "f":
        numbers, integral = raw.astype(np.float64), False
    else:  # strings
        numbers, integral = None, False
    if task is None:
        task = "classification" if integral or numbers is None else "regression"
        whole = numbers is not None and not integral and bool(np.all(np.isfinite(numbers))) and \
            bool(np.all(numbers == np.round(numbers)))
        how = ("integer labels" if integral else "text labels" if numbers is None else
               "floating-point numbers" if whole else "numbers with a fraction")
        how = f"inferred from the {how} in {column!r}"
        if whole:
            how += "; all whole: if they are class labels, give task='classification' or --task classification"
        if integral and numbers is not None:
            k, n = len(np.unique(numbers)), len(numbers)
            if k > MANY_CLASSES and k * MIN_PER_CLASS > n:
                raise ValueError(
                    f"data file {path}: target {column!r} holds {k} distinct integers in {n} rows (fewer than "
                    f"{MIN_PER_CLASS} rows per class on average), which looks like a quantity, not class labels; "
                    f"give task='regression' (--task regression), or task='classification' if they are classes"
                )
    else:
        how = "given"
    if task == "regression":
        if numbers is None:
            example = next(c for c in raw.reshape(-1) if not _is_number(c))
            raise ValueError(
                f"data file {path}: target {column!r} is not numeric ({str(example)!r}), so it cannot be "
                f"a regression target; use classification"
            )
        y = numbers.reshape(len(numbers), -1)
        return y, task, None, how
    if raw.ndim != 1 and not (raw.ndim == 2 and raw.shape[1] == 1):
        raise ValueError(f"data file {path}: class labels {column!r} must be one per row, got shape {raw.shape}")
    flat = raw.reshape(-1)
    if numbers is not None and not bool(np.all(numbers == np.round(numbers))):
        example = next(v for v in numbers.reshape(-1) if v != np.round(v))  # (NaN too: not a label either)
        raise ValueError(
            f"data file {path}: target {column!r} holds numbers with a fraction ({example:g}), which are not "
            f"class labels; classification needs integer or text labels (a quantity is task='regression', "
            f"--task regression)"
        )
    if numbers is not None:
        values, y = np.unique(numbers.reshape(-1), return_inverse=True)
        classes = [_label(v) for v in values]
    else:
        values, y = np.unique(flat.astype(str), return_inverse=True)
        classes = [str(v) for v in values]
    return y.astype(np.int64), task, classes, how


def _is_int(cell: str) -> bool:
    try:
        int(str(cell).strip())
    except ValueError:
        return False
    return True


def _is_number(cell: Any) -> bool:
    try:
        float(cell)
    except (TypeError, ValueError):
        return False
    return True


def _label(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def check_range(path: Any, table: Table, largest: float, dtype: str) -> None:
    """ValueError when a feature or a regression target holds a value beyond ``largest`` (the
    dtype's), which the tensors could not hold (it would be infinite)."""
    columns = [(table.X, table.feature_names, "feature column")]
    if table.task == "regression":
        columns.append((table.y, None, "target"))
    for values, names, role in columns:
        big = np.abs(values).max(axis=0) if values.size else np.zeros(0)
        over = np.flatnonzero(big > largest)
        if over.size:
            j = int(over[0])
            what = f"{role} {names[j]!r}" if names is not None else role
            raise ValueError(
                f"data file {path}: {what} holds {values[np.argmax(np.abs(values[:, j])), j]:.3g}, beyond "
                f"the range of {dtype} (+-{largest:.3g}) the tensors are made of; rescale it (divide it by a "
                f"power of ten)"
            )


def too_few_rows(path: Any, n: int, fractions: tuple[float, float, float]) -> None:
    """ValueError when a part of the split that should hold examples would be empty."""
    parts = ("training", "validation", "test")

    def empty(m: int) -> list[str]:
        return [parts[s] for s, (p, k) in enumerate(zip(fractions, split_sizes(m, fractions))) if p > 0 and k == 0]

    gone = empty(n)
    if not gone:
        return
    need = next(m for m in range(n + 1, n + 10_000) if not empty(m))
    raise ValueError(
        f"data file {path}: {n} rows are too few for the split {tuple(round(p, 3) for p in fractions)}: "
        f"the {' and '.join(gone)} part would be empty; it needs at least {need} rows"
    )
