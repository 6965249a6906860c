"""The README's Python examples run as written, one after another, as a newcomer pastes them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 4


def test_every_python_example_runs_in_order(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # (the examples write files: back.pt, runs/)
    namespace: dict = {}
    for i, block in enumerate(BLOCKS):
        try:
            exec(compile(block, f"README.md python block {i}", "exec"), namespace)
        except Exception as e:  # pragma: no cover - the message is the point
            pytest.fail(f"README python block {i} ({block.splitlines()[0]!r}) failed: {type(e).__name__}: {e}")
    assert "w" in namespace and namespace["w"].tolist() == pytest.approx([0.94, 0.97])
