"""What a newcomer saw running the README's and ``--help``'s commands from a fresh clone, run as the real command."""

from __future__ import annotations

import numpy as np

from tests.cli_app import descend


def table_rows(output: str) -> list[list[str]]:
    """The body rows of the Rich table printed, cells stripped."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in output.splitlines() if line.count("│") >= 3]


def test_sweep_table_gives_each_stretch_of_a_region_its_own_row() -> None:
    # rastrigin's divergent lrs lie between good ones: the table said "good 0.001 to 0.896 (61)" and
    # "divergent 0.416 to 1 (3)", two ranges that overlap
    res = descend("sweep", "rastrigin", "-o", "rmsprop", "--steps", "300")
    assert res.returncode == 0, res.stderr
    rows = table_rows(res.stdout)
    assert rows == [["good", "0.001", "0.373", "55"], ["divergent", "0.416", "0.416", "1"],
                    ["good", "0.464", "0.464", "1"], ["divergent", "0.518", "0.518", "1"],
                    ["good", "0.578", "0.896", "5"], ["divergent", "1", "1", "1"]]
    assert sum(int(r[3]) for r in rows) == 64


def test_schedule_over_ten_steps_prints_every_step() -> None:
    # the --help example printed steps 0-4 and 6-9: step 5 was left out of a 10-step table
    res = descend("schedule", "inverse-time:rate=1", "--lr", "0.2", "--steps", "10")
    assert res.returncode == 0, res.stderr
    rows = table_rows(res.stdout)
    assert [int(r[0]) for r in rows] == list(range(10))
    assert [float(r[1]) for r in rows] == [float(f"{0.2 / (1 + n):.6g}") for n in range(10)]


def test_whole_float_targets_name_the_command_line_option(tmp_path) -> None:
    # linnerud's Weight written as floats ("191.0"): the note told a command-line user to "give
    # task='classification'", a Python keyword, and not the --task option
    import sklearn.datasets

    b = sklearn.datasets.load_linnerud()
    lines = [",".join([*b.feature_names, "Weight"])]
    lines += [",".join(str(float(v)) for v in [*x, t[0]]) for x, t in zip(b.data, b.target, strict=True)]
    csv = tmp_path / "linnerud.csv"
    csv.write_text("\n".join(lines) + "\n")
    res = descend("train", str(csv), "--target", "Weight", "--model", "linear", "--epochs", "1",
                  "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    first = " ".join(res.stdout.split()).split(" data: ", 1)[-1]
    assert ("20 rows, 3 features, 1 target(s); task regression (inferred from the floating-point numbers in "
            "'Weight'; all whole: if they are class labels, give task='classification' or --task classification)"
            ) in first


def test_train_prints_the_run_folder_on_one_line(tmp_path) -> None:
    # the caption under the results table wrapped at the table's width: "run folder:" on one line and
    # the path, centred, on the next (runs/breast_cancer-logistic-sgd-<time>), or the path cut in two
    out = tmp_path / "a-run-folder-with-a-name-longer-than-the-results-table"
    res = descend("train", "diabetes", "--model", "linear", "--epochs", "1", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert [line.strip() for line in res.stdout.splitlines() if "run folder:" in line] == [f"run folder: {out}"]


def test_no_progress_still_says_what_was_read_from_the_file(tmp_path) -> None:
    # --no-progress also dropped the "data: ..." line (and the phase hand-offs): the Trainer calls
    # on_progress only when progress is not False, and that line comes through it
    csv = tmp_path / "moons.csv"
    csv.write_text("a,b,label\n" + "".join(f"{i % 7 / 7},{i % 5 / 5},{['no', 'yes'][i % 2]}\n" for i in range(40)))
    res = descend("train", str(csv), "--target", "label", "--phases", "adam:1,sgd:1", "--no-progress",
                  "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == ("data: moons.csv: 40 rows, 2 features, 2 classes (no: 20, yes: 20); task classification "
                        "(inferred from the text labels in 'label')")
    assert "phase 2: SGD from iteration 1, lr 0.01" in lines
    assert not [line for line in lines if line.startswith("iteration ")]  # and still no progress lines


def test_classification_of_numbers_with_a_fraction_is_refused(tmp_path) -> None:
    # make_regression's y with --task classification trained 200 one-example classes (0.00% on
    # validation and test) instead of saying that 12.34 is not a class label
    import sklearn.datasets

    X, y = sklearn.datasets.make_regression(60, 3, noise=1.0, random_state=0)
    np.savez(tmp_path / "reg.npz", X=X, y=y)
    res = descend("train", str(tmp_path / "reg.npz"), "--task", "classification", "--out", str(tmp_path / "run"))
    assert res.returncode == 2, res.stdout
    first = next(v for v in y if v != round(v))
    assert " ".join(res.stderr.split()) == (
        f"error: data file {tmp_path / 'reg.npz'}: target 'y' holds numbers with a fraction ({first:g}), which "
        f"are not class labels; classification needs integer or text labels (a quantity is task='regression', "
        f"--task regression)")
    assert not (tmp_path / "run").exists()
