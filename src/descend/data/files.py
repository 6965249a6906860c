"""Your own data: a CSV file with a target column, or an ``.npz`` file with arrays ``X`` and ``y``.

:func:`descend.data.load` reads a path the way it reads a bundled name: the
same seeded (stratified) split, standardization fitted on the training split
only, and tensors of the same shapes and dtypes::

    data.load("wine.csv", target="target")        # CSV: header row, numeric features
    data.load("points.npz")                        # arrays X (n, d) and y (n,) or (n, m)

**The task** follows the target's values: integers or strings are class
labels (classification; the classes are the sorted distinct values, mapped to
0..k-1 and kept as ``class_names``), numbers with a fraction are regression.
Integer targets with more than 20 distinct values and fewer than 5 rows per
value on average are refused without ``task`` (they look like a quantity).
``task="classification"`` or ``task="regression"`` overrides that (regression
needs numeric targets).

**Refusals** name the file, the column and the problem: a target that is not
there, a feature that is not numeric, a missing or NaN value, too few rows for
the split, a target with a single class.
"""

from __future__ import annotations

import csv
import math
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ._split import split_sizes

SUFFIXES = (".csv", ".npz")
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


def is_path(name: Any) -> bool:
    """Whether ``name`` names a data file (a ``.csv``/``.npz`` suffix, or an existing file)."""
    if isinstance(name, Path):
        return True
    text = str(name)
    return Path(text).suffix.lower() in SUFFIXES or ("/" in text or "\\" in text) or Path(text).is_file()


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
        X, raw, names, column = _read_npz(path, target)
    elif suffix == ".csv":
        X, raw, names, column = _read_csv(path, target)
    else:
        raise ValueError(f"data file {path}: unknown kind {suffix or '(no suffix)'!r}; descend reads .csv and .npz files")
    y, kind, classes, how = _targets(path, column, raw, task)
    if kind == "classification" and len(classes) < 2:
        raise ValueError(
            f"data file {path}: target {column!r} has a single class ({classes[0]!r} in all {len(y)} rows); "
            f"classification needs at least 2 classes"
        )
    return Table(X, y, kind, names, classes, how)


# ---------------------------------------------------------------------------- CSV


def _read_csv(path: Path, target: str | None) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"data file {path} is empty; it needs a header row and one row per example")
    header = [c.strip() for c in rows[0]]
    if target is None:
        raise ValueError(
            f"data file {path}: name the target column with --target (target=...); columns: {', '.join(header)}"
        )
    if target not in header:
        raise ValueError(f"data file {path} has no column {target!r} (the target); columns: {', '.join(header)}")
    if header.count(target) > 1:
        raise ValueError(f"data file {path} has {header.count(target)} columns named {target!r}; rename them")
    body = rows[1:]
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise ValueError(
                f"data file {path}, line {i + 2}: {len(r)} values, but the header has {len(header)} columns"
            )
    if not body:
        raise ValueError(f"data file {path} has a header but no rows")
    t = header.index(target)
    names = [h for j, h in enumerate(header) if j != t]
    if not names:
        raise ValueError(f"data file {path} has only the target column {target!r}; it needs at least one feature")
    X = np.empty((len(body), len(names)), dtype=np.float64)
    for j, (col, name) in enumerate(((j, h) for j, h in enumerate(header) if j != t)):
        for i, r in enumerate(body):
            cell = r[col].strip()
            try:
                v = float(cell)
            except ValueError:
                if cell.lower() in MISSING:
                    _missing(path, name, [r[col] for r in body], "feature")
                raise ValueError(
                    f"data file {path}: feature column {name!r} is not numeric (line {i + 2}: {cell!r}); "
                    f"encode it as numbers or drop the column"
                ) from None
            if not math.isfinite(v):
                _missing(path, name, [r[col] for r in body], "feature")
            X[i, j] = v
    return X, np.array([r[t].strip() for r in body], dtype=object), names, target


def _missing(path: Path, column: str, cells: list[Any], role: str) -> None:
    bad = [i for i, c in enumerate(cells) if _is_missing(c)]
    raise ValueError(
        f"data file {path}: {role} column {column!r} has {len(bad)} missing or NaN value(s) "
        f"(first on line {bad[0] + 2}); fill or drop those rows"
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


def _read_npz(path: Path, target: str | None) -> tuple[np.ndarray, np.ndarray, list[str], str]:
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
    return X, y, [f"x{j}" for j in range(X.shape[1])], key


# ---------------------------------------------------------------------------- targets and the task


def _targets(path: Path, column: str, raw: np.ndarray, task: str | None) -> tuple[np.ndarray, str, list[str] | None, str]:
    """``(y, task, class_names, how)`` from the raw target values."""
    numbers: np.ndarray | None
    if raw.dtype == object:  # CSV cells
        if any(_is_missing(c) for c in raw):
            _missing(path, column, list(raw), "target")
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
               "floating-point numbers (all whole: if they are class labels, give task='classification')"
               if whole else "numbers with a fraction")
        how = f"inferred from the {how} in {column!r}"
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
