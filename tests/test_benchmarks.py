"""The benchmark scripts the README quotes run as commands (smallest settings), and refuse bad input
with argparse's error rather than a traceback."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def bench(*args, env=None):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_step_throughput_prints_its_table_and_ratios():
    res = bench("benchmarks/step_throughput.py", "--sets", "2", "--optimizers", "SGD", "--quick",
                "--no-compile-times", "--warmup", "1")
    assert res.returncode == 0, res.stderr
    row = next(line for line in res.stdout.splitlines() if line.startswith("| SGD |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert all(float(c) > 0 for c in cells[1:11] if c != "—")  # ms per step of every variant
    assert cells[10] == "—"  # (no gradient scan timed alone on 2 parameters)
    assert cells[11].endswith("x") and cells[12].endswith(")") and cells[13].endswith("x")


def test_step_throughput_prints_the_check_against_the_scan_alone(capsys):
    """The ``check / scan`` cell is the checked step less the unchecked one over the scan alone."""
    spec = importlib.util.spec_from_file_location("step_throughput", ROOT / "benchmarks" / "step_throughput.py")
    st = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(st)
    ms = {k: 1.0 for k in ("d.default", "d.foreach", "d.foreach nc", "t.default", "t.loop", "t.foreach", "t.fused")}
    ms.update({"d.fused": 9.0, "d.fused nc": 7.0, "g scan": 2.5, "axpy": 8.0})
    st.print_rows([{"set": "big", "numel": 25_000_000, "tensors": 100, "optimizer": "SGD", "ms": ms, "t_best": "t.fused",
                    "default_vs_torch_default": 1.0, "fast_vs_torch_best": 1.0, "fast_nc_vs_torch_best": 1.0,
                    "fused_vs_axpy": 8 / 9, "fused_nc_vs_axpy": 8 / 7, "check_vs_scan": (9.0 - 7.0) / 2.5}])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| SGD |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[10] == "2.500" and cells[14] == "0.80" and cells[15] == "0.89 (1.14)"
    grads = [torch.ones(3), torch.tensor([1.0, float("nan")])]
    ps = [torch.zeros_like(g).requires_grad_() for g in grads]
    for p, g in zip(ps, grads):
        p.grad = g
    assert st.Scan(ps).step() is False and st.Scan(ps[:1]).step() is True  # the check's answer, read alone


def test_native_ab_prints_its_table_and_refuses_an_unknown_optimizer():
    for without in ("bulk", "replay"):
        res = bench("benchmarks/native_ab.py", "--sets", "10k", "--optimizers", "SGD,Adam", "--rounds", "3",
                    "--without", without)
        assert res.returncode == 0, res.stderr
        assert f"with and without {without}" in res.stdout
        rows = [line for line in res.stdout.splitlines() if line.startswith("| 10k |")]
        assert [r.split("|")[2].strip() for r in rows] == ["SGD", "Adam"]
        assert all(float(c.strip().rstrip("x")) > 0 for r in rows for c in r.strip("|").split("|")[2:])
    bad = bench("benchmarks/native_ab.py", "--optimizers", "Lion")
    assert bad.returncode == 2 and "'Lion' is not one of SGD, Momentum, Adam" in bad.stderr


def test_profile_step_reports_no_recompiles_and_direct_calls():
    res = bench("benchmarks/profile_step.py", "--set", "10k", "--optimizer", "Adam", "--impl", "fused",
                "--steps", "2", "--rows", "5")
    assert res.returncode == 0, res.stderr
    assert "graphs compiled during the profiled steps: 0;" in res.stdout
    assert "through Dynamo" in res.stdout and " 0 direct" not in res.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer where there is no GPU")
@pytest.mark.parametrize("script", ["step_throughput.py", "state_dtype.py", "trainer_overhead.py", "profile_step.py"])
def test_a_device_that_is_not_here_is_an_error_naming_it(script):
    res = bench(f"benchmarks/{script}", "--device", "cuda")
    assert res.returncode == 2
    assert "--device 'cuda': this torch sees no CUDA device" in res.stderr
    assert "Traceback" not in res.stderr


def test_gpu_run_script_runs_its_parts_on_the_cpu(tmp_path):
    """benchmarks/gpu_run.sh as a dry run on the CPU (one part, the smallest set)."""
    res = subprocess.run(["bash", "benchmarks/gpu_run.sh"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OUT": str(tmp_path), "DEV": "cpu", "SETS": "2", "PARTS": "profile",
                              "PY": sys.executable})
    assert res.returncode == 0, res.stderr
    assert "== profile: exit 0" in (tmp_path / "summary.txt").read_text()
    assert "graphs compiled during the profiled steps: 0;" in (tmp_path / "profile.txt").read_text()


def test_state_dtype_accuracy_runs_every_variant_and_prints_its_table():
    res = bench("benchmarks/state_dtype_accuracy.py", "--seeds", "1", "--epochs", "1", "--models", "mlp")
    assert res.returncode == 0, res.stderr
    rows = [line for line in res.stdout.splitlines() if line.startswith("| mlp |")]
    assert [r.split("|")[2].strip() for r in rows] == ["fp32", "bf16 sr", "bf16 rtn", "8-bit block (sim)"]
    assert "4 runs in" in res.stdout


def test_simulated_8bit_blockwise_state_rounds_to_the_nearest_code_of_each_block():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import state_dtype_accuracy as acc
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    signed, unsigned = acc.CODES[True], acc.CODES[False]
    assert signed.numel() == unsigned.numel() == 256  # 8 bits
    assert signed.max() == 1.0 and unsigned.min() == 0.0 and (unsigned >= 0).all()
    # two blocks of 2048 (and a padded third) with their own scales
    gen = torch.Generator().manual_seed(0)
    t = torch.randn(2 * acc.BLOCK + 100, generator=gen, dtype=torch.float64)
    t[: acc.BLOCK] *= 1e-3
    q = t.clone()
    acc.blockwise8(q, signed=True)
    for lo, hi in [(0, acc.BLOCK), (acc.BLOCK, 2 * acc.BLOCK), (2 * acc.BLOCK, t.numel())]:
        scale = t[lo:hi].abs().max()
        x = t[lo:hi] / scale
        nearest = signed[(x[:, None] - signed[None, :]).abs().argmin(1)]
        torch.testing.assert_close(q[lo:hi], nearest * scale, rtol=1e-12, atol=0)
    # a block's largest value is kept exactly when positive (the code has 1.0, not -1.0)
    u = torch.tensor([0.5, -0.25, 3.0, 1e-9], dtype=torch.float64)
    acc.blockwise8(u, signed=True)
    assert u[2] == 3.0 and u[3] == 0.0 and abs(u[0] / 3.0 - 1 / 6) < 0.01
    s = torch.tensor([4.0, 1e-6, 0.0], dtype=torch.float64)
    acc.blockwise8(s, signed=False)
    assert s[2] == 0.0 and 0 < s[1] < 4e-6 and abs(s[0] - 4.0) < 0.02
