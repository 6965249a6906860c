"""Your own data: CSV and npz files load with the bundled sets' split and scaling; bad files say why."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn import datasets as skd

from descend import data


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def wine_csv(path: Path) -> Path:
    b = skd.load_wine()
    rows = [[*map(repr, map(float, x)), int(t)] for x, t in zip(b.data, b.target)]
    return write_csv(path, [*b.feature_names, "target"], rows)


def same_split(a: data.Dataset, b: data.Dataset) -> None:
    for part in ("train", "val", "test"):
        (xa, ya), (xb, yb) = a.part(part), b.part(part)
        assert torch.equal(xa, xb) and torch.equal(ya, yb), part
    assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std)


def test_csv_equals_the_bundled_set(tmp_path: Path) -> None:
    path = wine_csv(tmp_path / "wine.csv")
    for seed in (0, 3):
        mine = data.load(path, target="target", seed=seed)
        same_split(mine, data.load("wine", seed=seed))
    assert (mine.task, mine.n_classes, mine.n_features, mine.name) == ("classification", 3, 13, "wine")
    assert mine.class_names == ["0", "1", "2"] and mine.feature_names[0] == "alcohol"
    assert "inferred from the integer labels in 'target'" in mine.note
    assert data.load(str(path), target="target").source == str(path)


def test_npz_regression_equals_the_bundled_set(tmp_path: Path) -> None:
    b = skd.load_diabetes(scaled=False)
    np.savez(tmp_path / "d.npz", X=b.data, y=b.target.astype(np.float64))
    mine = data.load(tmp_path / "d.npz")
    assert mine.task == "regression" and mine.y_train.shape == (mine.n_train, 1)
    same_split(mine, data.load("diabetes"))


def test_npz_labels_and_task_override(tmp_path: Path) -> None:
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    np.savez(tmp_path / "s.npz", X=X, y=np.array(["cat", "dog"] * 10), z=np.arange(20) % 4)
    ds = data.load(tmp_path / "s.npz")
    assert ds.task == "classification" and ds.class_names == ["cat", "dog"]
    assert int((ds.y_train == 1).sum()) == 6  # stratified: 12 training rows, half dogs
    four = data.load(tmp_path / "s.npz", target="z")
    assert four.n_classes == 4
    reg = data.load(tmp_path / "s.npz", target="z", task="regression")
    assert reg.task == "regression" and reg.y_train.dtype == torch.float32
    allz = torch.cat([reg.y_train, reg.y_val, reg.y_test]).reshape(-1).sort().values
    assert allz.tolist() == sorted([float(v % 4) for v in range(20)])


def test_text_labels_and_float_regression(tmp_path: Path) -> None:
    rows = [[i, i * 0.5, "yes" if i % 3 else "no", i / 7] for i in range(30)]
    path = write_csv(tmp_path / "t.csv", ["a", "b", "label", "value"], rows)
    cls = data.load(path, target="label")
    assert cls.task == "classification" and cls.class_names == ["no", "yes"] and cls.n_features == 3
    # with "value" as the target, the text column "label" is a feature: refused
    with pytest.raises(ValueError, match=r"feature column 'label' is not numeric \(line 2: 'no'\)"):
        data.load(path, target="value")
    reg = data.load(write_csv(tmp_path / "r.csv", ["a", "value"], [[r[0], r[3]] for r in rows]), target="value")
    assert reg.task == "regression" and "numbers with a fraction" in reg.note


@pytest.mark.parametrize(
    ("header", "rows", "kwargs", "needle"),
    [
        (["a", "y"], [[1, 0], [2, 1]] * 10, {"target": "label"}, r"has no column 'label' \(the target\); columns: a, y"),
        (["a", "y"], [[1, 0], [2, 1]] * 10, {}, r"name the target column with --target"),
        (["a", "y"], [[1, 0], ["", 1]] * 10, {"target": "y"}, r"feature column 'a' has 10 missing or NaN value\(s\) \(first on line 3: ''\)"),
        (["a", "y"], [[1, 0], ["nan", 1]] * 10, {"target": "y"}, r"feature column 'a' has 10 missing"),
        (["a", "y"], [[1, 0], [2, "NA"]] * 10, {"target": "y"}, r"target column 'y' has 10 missing"),
        (["a", "y"], [[1, 0], [2, 1]], {"target": "y"}, r"2 rows are too few .* the test part would be empty; it needs at least 4 rows"),
        (["a", "y"], [[i, 7] for i in range(20)], {"target": "y"}, r"target 'y' has a single class \('7' in all 20 rows\)"),
        (["a", "y"], [[1, "x"], [2, "z"]] * 10, {"target": "y", "task": "regression"}, r"target 'y' is not numeric \('x'\)"),
        (["a", "y"], [[1, 0], [2, 1, 3]] * 10, {"target": "y"}, r"line 3: 3 values, but the header has 2"),
    ],
)
def test_bad_csv(tmp_path: Path, header: list, rows: list, kwargs: dict, needle: str) -> None:
    path = write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(ValueError, match=needle) as err:
        data.load(path, **kwargs)
    assert str(path) in str(err.value)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"data file .*nope.csv: not found"):
        data.load(tmp_path / "nope.csv", target="y")
    np.savez(tmp_path / "w.npz", features=np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"lacks array\(s\) X, y; it holds features"):
        data.load(tmp_path / "w.npz")
    np.savez(tmp_path / "n.npz", X=np.array([[1.0, np.nan]] * 10), y=np.arange(10) % 2)
    with pytest.raises(ValueError, match=r"X has 10 NaN or infinite value\(s\) \(first at row 0, column 1\)"):
        data.load(tmp_path / "n.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match=r"junk.npz is not a readable .npz"):
        data.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "o.npz", X=np.zeros((10, 2)), y=np.array([{"a": 1}] * 10, dtype=object))
    with pytest.raises(ValueError, match=r"holds object \(pickled\) arrays, which descend does not load") as err:
        data.load(tmp_path / "o.npz")
    assert "allow_pickle" not in str(err.value)
    with pytest.raises(ValueError, match=r"task must be one of classification, regression .*got 'ranking'"):
        data.load(tmp_path / "w.npz", task="ranking")
    with pytest.raises(ValueError, match="not to the bundled data set 'wine'"):
        data.load("wine", target="y")
    with pytest.raises(ValueError, match="or the path of a .csv or .npz file"):
        data.load("wines")


def test_an_integer_quantity_is_not_taken_for_class_labels(tmp_path: Path) -> None:
    """diabetes' progression cast to int: 214 distinct values in 442 rows is a quantity; without
    task= the file is refused with the fix, and task='regression' reads it."""
    b = skd.load_diabetes()
    path = write_csv(tmp_path / "int_reg.csv", [*b.feature_names, "progression"],
                     [[*x, int(t)] for x, t in zip(b.data, b.target)])
    with pytest.raises(ValueError, match=r"'progression' holds 214 distinct integers in 442 rows.*"
                                         r"task='regression' \(--task regression\)"):
        data.load(path, target="progression")
    assert data.load(path, target="progression", task="regression").task == "regression"
    assert data.load(path, target="progression", task="classification").n_classes == 214
    # whole floating-point labels stay regression unless told, and the note says how to change that
    np.savez(tmp_path / "bc.npz", X=skd.load_breast_cancer().data, y=skd.load_breast_cancer().target.astype(float))
    loaded = data.load(tmp_path / "bc.npz")
    assert loaded.task == "regression" and "all whole" in loaded.note and "task='classification'" in loaded.note


def test_task_is_read_in_any_case(tmp_path: Path) -> None:
    b = skd.load_diabetes()
    path = write_csv(tmp_path / "d.csv", [*b.feature_names, "y"], [[*x, t] for x, t in zip(b.data, b.target)])
    assert data.load(path, target="y", task=" Regression").task == "regression"
