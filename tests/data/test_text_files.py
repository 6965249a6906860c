"""Text tables as people export them (separators, decimal commas, encodings, line ends) read to the same
numbers as a plain CSV; what cannot be read unambiguously is refused, naming the file and what was found."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from descend import data

HEADER = ["größe", "b", "c", "label"]
X = np.random.default_rng(0).normal(size=(20, 3)).round(4) * [1, 10, 100]
LABELS = ["oui" if a + 0.05 * b > 0 else "non" for a, b, _ in X]


def plain(x: float) -> str:
    return repr(float(x))


def comma(x: float) -> str:
    return repr(float(x)).replace(".", ",")


def table(sep: str = ",", number: Callable[[float], str] = plain, end: str = "\n", quote: bool = False) -> str:
    def line(cells: list[str]) -> str:
        return sep.join(f'"{c}"' if quote else c for c in cells) + end

    return line(HEADER) + "".join(line([*map(number, r), t]) for r, t in zip(X, LABELS))


def same(a: data.Dataset, b: data.Dataset) -> None:
    for part in ("train", "val", "test"):
        (xa, ya), (xb, yb) = a.part(part), b.part(part)
        assert torch.equal(xa, xb) and torch.equal(ya, yb), part
    assert (a.feature_names, a.class_names, a.n_features) == (b.feature_names, b.class_names, b.n_features)


VARIANTS = {  # name: (file name, bytes, what the note says about it)
    "semicolon, decimal commas": ("euro.csv", table(";", comma).encode(), "columns separated by ';'; decimal commas read as decimal points"),
    "semicolon, decimal commas, Windows-1252, CRLF": ("excel.csv", table(";", comma, "\r\n").encode("cp1252"), "not UTF-8: read as Windows-1252"),
    "tabs, .tsv": ("t.tsv", table("\t").encode(), "columns separated by tabs"),
    "tabs in a .csv": ("t.csv", table("\t").encode(), "columns separated by tabs"),
    "UTF-16 tabs (Excel's Unicode text)": ("u.txt", table("\t", comma, "\r\n").encode("utf-16"), "decimal commas"),
    "pipes, .txt": ("p.txt", table("|").encode(), "columns separated by '|'"),
    "BOM and CRLF": ("bom.csv", b"\xef\xbb\xbf" + table(end="\r\n").encode(), None),
    "old Mac CR": ("cr.csv", table(end="\r").encode(), None),
    "every cell quoted": ("q.csv", table(quote=True).encode(), None),
    "quoted decimal commas, semicolons": ("qe.csv", table(";", comma, quote=True).encode(), "decimal commas"),
    "blank lines": ("blank.csv", table().replace("\n", "\n\n", 5).encode() + b"\n  \n\n", None),
    "Excel's sep= first line": ("sep.csv", b"sep=;\r\n" + table(";", comma, "\r\n").encode(), "columns separated by ';'"),
    "a separator at each line's end": ("trail.csv", table(end=",\n").encode(), "left out 1 empty column(s) without a name"),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_exports_read_to_the_numbers_of_the_plain_csv(tmp_path: Path, name: str) -> None:
    (tmp_path / "plain.csv").write_text(table(), encoding="utf-8")
    reference = data.load(tmp_path / "plain.csv", target="label")
    counts = {c: LABELS.count(c) for c in ("non", "oui")}
    assert reference.note.startswith(f"plain.csv: 20 rows, 3 features, 2 classes (non: {counts['non']}, "
                                     f"oui: {counts['oui']}); task classification")
    file, content, note = VARIANTS[name]
    (tmp_path / file).write_bytes(content)
    mine = data.load(tmp_path / file, target="label")
    same(mine, reference)
    assert mine.note.startswith(f"{file}: 20 rows, 3 features, 2 classes (non: {counts['non']}")
    if note is not None:
        assert note in mine.note
    else:
        assert "separated" not in mine.note and "decimal" not in mine.note


def refused(tmp_path: Path, file: str, content: bytes, **kw) -> str:
    path = tmp_path / file
    path.write_bytes(content)
    with pytest.raises(ValueError) as err:
        data.load(path, **kw)
    message = str(err.value)
    assert message.startswith(f"data file {path}"), message
    return message


BAD = [
    ("no header", "a.csv", b"0.5,1,0\n" + b"1.5,2,1\n" * 9,
     "its first line (0.5, 1, 0) holds only numbers, so the file has no header row"),
    ("a comma in a number of a comma-separated file", "c.csv", b'a,b,y\n"1,5",2,0\n' + b"1.5,2,1\n" * 9,
     "a number with a comma in a comma-separated file (line 2, column 'a': '1,5'): descend cannot tell a decimal "
     "comma from a thousands separator"),
    ("decimal commas and points mixed", "m.csv", b"a;b;y\n1,5;2;0\n2.5;1;1\n" + b"1;2;1\n" * 8,
     "holds numbers with a decimal comma (line 2, column 'a': '1,5') and numbers with a point (line 3, column "
     "'a': '2.5')"),
    ("thousands dots in a decimal-comma file", "k.csv", b"a;b;y\n1,5;1.234;0\n" + b"1;2;1\n" * 9,
     "numbers with a point (line 2, column 'b': '1.234')"),
    ("two separators split every line alike", "amb.csv", b"a,b;c,d\n" + b"1,2;3,4\n" * 10,
     "cannot tell which character separates the columns (',' splits every line into 3 columns, ';' splits every "
     "line into 2 columns)"),
    ("bytes no text encoding has", "bin.csv", b"a,b,y\n\x81\x8d,1,0\n",
     "is not a text file descend can read: byte 0x81 at offset 6 (line 2) is not UTF-8 or Windows-1252 text"),
    ("NUL bytes", "nul.csv", b"a,b,y\n1,\x00,0\n", "holds NUL bytes: it is a binary file, not a text table"),
    ("a missing value after blank lines", "gap.csv", b"a,y\n\n1,0\n\n\n,1\n" + b"2,1\n" * 9,
     "feature column 'a' has 1 missing or NaN value(s) (first on line 6: '')"),
    ("a missing value under a sep= line", "sepgap.csv", b"sep=;\na;y\n1;0\n;1\n" + b"2;1\n" * 9,
     "feature column 'a' has 1 missing or NaN value(s) (first on line 4: '')"),
    ("spaces between columns", "s.txt", b"a b y\n" + b"1 2 0\n" * 10,
     "has no column 'y' (the target); columns: a b y (the first line is one column: descend separates columns at "
     "',', ';', tabs, '|')"),
    ("a short line after blank lines", "short.csv", b"a,b,y\n\n\n1,2,0\n1,2\n", "line 5: 2 values, but the header has 3"),
    ("a feature beyond float32", "huge.csv", b"a,b,y\n" + b"".join(b"%de300,%d,%d\n" % (i, i, i % 2) for i in range(10)),
     "feature column 'a' holds 9e+300, beyond the range of float32 (+-3.4e+38)"),
    ("thousands separators", "t.csv", b'a,b,y\n"1,234.5",1,0\n' + b"1,2,1\n" * 9,
     "feature column 'a' is not numeric (line 2: '1,234.5'); write numbers without thousands separators"),
    ("an .npy file", "a.npy", b"\x93NUMPY", "descend reads .csv, .tsv, .txt (delimited text) and .npz files (one array: "
     "save X and y together, np.savez(path, X=X, y=y))"),
]


@pytest.mark.parametrize(("file", "content", "needle"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_what_cannot_be_read_unambiguously_is_refused(tmp_path: Path, file: str, content: bytes, needle: str) -> None:
    assert needle in refused(tmp_path, file, content, target="y")


def test_a_regression_target_beyond_float32_and_an_empty_npz_are_refused(tmp_path: Path) -> None:
    content = b"a,y\n" + b"".join(b"%d,%de300\n" % (i, i) for i in range(10))
    assert "target holds 9e+300, beyond the range of float32" in refused(tmp_path, "r.csv", content, target="y",
                                                                          task="regression")
    np.savez(tmp_path / "e.npz", X=np.zeros((0, 3)), y=np.zeros(0))
    with pytest.raises(ValueError, match=re.escape("e.npz: X has no rows (shape (0, 3))")):
        data.load(tmp_path / "e.npz")


def test_huge_features_standardize_in_float64_to_the_numbers_of_small_ones(tmp_path: Path) -> None:
    """Values near the float64 limit: their squares overflow, and the std was inf (all features 0)."""
    np.savez(tmp_path / "small.npz", X=X, y=np.arange(20) % 2)
    np.savez(tmp_path / "huge.npz", X=X * 1e300, y=np.arange(20) % 2)
    small, huge = (data.load(tmp_path / f, dtype=torch.float64) for f in ("small.npz", "huge.npz"))
    assert torch.allclose(huge.X_train, small.X_train, rtol=1e-12, atol=1e-12)
    assert float(huge.X_train.abs().max()) > 1.0 and torch.allclose(huge.std / 1e300, small.std, rtol=1e-12)


def test_a_folder_given_as_data_is_named_as_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mydata").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"^data file mydata: a folder, not a file; give a \.csv file"):
        data.load("mydata", target="y")
    with pytest.raises(ValueError, match=r"^unknown data set 'nothing'"):  # neither a set nor anything there
        data.load("nothing")


def test_an_unnamed_row_index_column_is_said_to_be_one(tmp_path: Path) -> None:
    """pandas' to_csv writes the index as a first, unnamed column: a feature that counts the rows (and may
    give away a sorted file's classes), which the data line names."""
    (tmp_path / "pd.csv").write_text(",a,y\n" + "".join(f"{i},{i * 7 % 5},{i % 2}\n" for i in range(20)))
    ds = data.load(tmp_path / "pd.csv", target="y")
    assert ds.n_features == 2 and ds.feature_names == ["", "a"]
    assert "feature 1 has no name and counts 0, 1, ... like a row index: it is used as a feature" in ds.note
    (tmp_path / "named.csv").write_text((tmp_path / "pd.csv").read_text().replace(",a,y", "id,a,y", 1))
    assert "row index" not in data.load(tmp_path / "named.csv", target="y").note  # named: the user's choice
