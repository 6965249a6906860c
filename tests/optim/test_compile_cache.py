"""The compiled path's memo of Inductor's CPU ISA probes: answered once per machine setup."""

import json
import sys

import pytest

from descend.optim import kernels

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the probe memo is for x86-64 Linux")


def test_isa_probes_are_answered_from_the_cache_file(tmp_path, monkeypatch):
    from torch._inductor import cpu_vec_isa

    if kernels.isa_cache() is None:
        pytest.skip("not an x86-64 CPU")
    monkeypatch.setenv("DESCEND_CACHE_DIR", str(tmp_path / "descend"))  # created on first write
    calls = []

    def fake_probe(isa, code):
        calls.append(code)
        return code == "good"

    monkeypatch.setattr(cpu_vec_isa.VecISA, "check_build", fake_probe)
    isa = cpu_vec_isa.VecAVX2()
    with kernels.memo_probes():
        assert cpu_vec_isa.VecISA.check_build(isa, "good") is True
        assert cpu_vec_isa.VecISA.check_build(isa, "bad") is False
        assert cpu_vec_isa.VecISA.check_build(isa, "good") is True
    assert calls == ["good", "bad"]
    path, fingerprint = kernels.isa_cache()
    saved = json.loads(path.read_text())
    assert path == tmp_path / "descend" / "vec_isa.json"
    assert saved["fingerprint"] == fingerprint and sorted(saved["probes"].values()) == [False, True]
    with kernels.memo_probes():  # a later process: no probe runs
        assert cpu_vec_isa.VecISA.check_build(isa, "good") is True
        assert cpu_vec_isa.VecISA.check_build(isa, "bad") is False
    assert calls == ["good", "bad"]
    assert cpu_vec_isa.VecISA.check_build is fake_probe  # the patch ends with the scope
    path.write_text(json.dumps({"fingerprint": "another machine", "probes": saved["probes"]}))
    with kernels.memo_probes():  # another setup's answers are not trusted
        cpu_vec_isa.VecISA.check_build(isa, "good")
    assert calls == ["good", "bad", "good"]


def test_the_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("DESCEND_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert kernels.cache_home() == tmp_path / "xdg" / "descend"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert kernels.cache_home() == tmp_path / "home" / ".cache" / "descend"
    monkeypatch.setenv("DESCEND_CACHE_DIR", str(tmp_path / "mine"))
    assert kernels.cache_home() == tmp_path / "mine"
