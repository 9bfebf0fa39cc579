"""The first-principles reference: settings, k-mesh rule, label store, and one real
GPAW + D3 single point through the registry and the store (seconds).

The real calculation needs the ``dft`` extra; it is skipped without it unless
``VIGLAS_REQUIRE_DFT=1`` (set by ``.ci/run``, which installs the extra), where a
missing GPAW fails the test instead.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from viglas.errors import CalculatorError, MissingDependencyError
from viglas.potentials.dft import (
    DFT_DEFAULTS,
    DFTLabelStore,
    DFTResult,
    kpoint_mesh,
    label_atoms,
    read_labels,
    resolve_settings,
)


def _have_gpaw() -> bool:
    try:
        import dftd3.ase  # noqa: F401
        import gpaw  # noqa: F401
    except ImportError:
        return False
    return True


needs_gpaw = pytest.mark.skipif(not _have_gpaw() and os.environ.get("VIGLAS_REQUIRE_DFT")
                                != "1", reason="dft extra not installed")


def test_settings_defaults_and_refusals():
    s = resolve_settings(None)
    assert s == {**DFT_DEFAULTS}
    assert resolve_settings({"d3": "BJ"})["d3"] == "bj"
    with pytest.raises(CalculatorError, match="calculator.params"):
        resolve_settings({"ecutt": 400})
    with pytest.raises(CalculatorError, match="ecut_eV"):
        resolve_settings({"ecut_eV": 50})
    with pytest.raises(CalculatorError, match="d3"):
        resolve_settings({"d3": "d4"})
    with pytest.raises(CalculatorError, match="kpts"):
        resolve_settings({"kpts": [1, 2]})


def test_kpoint_density_rule():
    s = resolve_settings(None)  # 1.2 per 1/Å: n = ceil(2*pi*1.2/a) for a cubic cell
    assert kpoint_mesh(np.eye(3) * 11.6, s) == [1, 1, 1]
    assert kpoint_mesh(np.eye(3) * 7.7, s) == [1, 1, 1]
    assert kpoint_mesh(np.eye(3) * 7.5, s) == [2, 2, 2]
    assert kpoint_mesh(np.diag([7.0, 6.5, 13.0]), s) == [2, 2, 1]
    assert kpoint_mesh(np.eye(3) * 5.0, resolve_settings({"kpts": [3, 3, 3]})) == [3, 3, 3]


def test_store_is_content_addressed_and_claims(tmp_path):
    a = bulk("LiCl", "rocksalt", a=5.13)
    st = DFTLabelStore(tmp_path, {"ecut_eV": 300}, versions={"gpaw": "x"})
    # other settings or other code versions give another folder
    assert DFTLabelStore(tmp_path, {"ecut_eV": 350}, versions={"gpaw": "x"}).hash != st.hash
    assert DFTLabelStore(tmp_path, {"ecut_eV": 300}, versions={"gpaw": "y"}).hash != st.hash
    # log file and threads do not change the numbers, so not the hash
    assert DFTLabelStore(tmp_path, {"ecut_eV": 300, "txt": "x.txt", "threads": 2},
                         versions={"gpaw": "x"}).hash == st.hash
    assert st.claim(a) and not st.claim(a)  # a live claim (this process) is respected
    st.release(a)
    # a claim left by a dead process is taken over
    (st.dir / f"{st.key(a)}.claim").write_text(
        f"{__import__('platform').node()} 999999999")
    assert st.claim(a)
    res = DFTResult(energy=-1.5, forces=np.ones((2, 3)), stress=np.arange(6) * 1e-3,
                    cpu_s=1.0, kpts=[3, 3, 3])
    st.put(a, res, composition="LiCl")
    st.release(a)
    assert st.has(a) and not st.claim(a)  # labelled frames are never claimed again
    back = st.get(a)
    assert back.get_potential_energy() == pytest.approx(-1.5)
    np.testing.assert_allclose(back.get_forces(), 1.0)
    np.testing.assert_allclose(back.get_stress(), np.arange(6) * 1e-3)
    assert back.info["composition"] == "LiCl" and back.info["dft_settings_hash"] == st.hash
    assert st.path(a).name.endswith("_k3x3x3.extxyz.gz")  # mesh of the 1.2/Å rule
    # the mesh rule is not in the folder hash: a rule that gives the same mesh finds
    # the same label, one that gives another mesh does not
    same = DFTLabelStore(tmp_path, {"ecut_eV": 300, "kpts": [3, 3, 3]},
                         versions={"gpaw": "x"})
    assert same.hash == st.hash and same.has(a)
    assert not DFTLabelStore(tmp_path, {"ecut_eV": 300, "kpts": [2, 2, 2]},
                             versions={"gpaw": "x"}).has(a)
    assert [x.info["composition"] for x in st.current()] == ["LiCl"]
    moved = a.copy()
    moved.positions[0, 0] += 1e-3
    assert not st.has(moved)


def test_missing_gpaw_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "gpaw" or name.startswith("gpaw."):
            raise ImportError("No module named 'gpaw'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    import importlib

    monkeypatch.setattr(importlib, "import_module",
                        lambda n, *a: fake(n) if n.startswith("gpaw") else real(n))
    from viglas.calculators import get_calculator

    with pytest.raises(MissingDependencyError) as err:
        get_calculator({"name": "gpaw"})
    assert "[dft]" in err.value.one_line() and "libxc-dev" in err.value.one_line()


@needs_gpaw
def test_real_gpaw_d3_single_point_through_registry_and_store(tmp_path):
    """LiCl rock salt (2 atoms, 300 eV, 2x2x2 k): a real PBE + D3(BJ) single point."""
    from viglas.calculators import get_calculator

    a = bulk("LiCl", "rocksalt", a=5.13)
    a.positions[1] += [0.15, 0.0, 0.0]  # off the symmetric site: non-zero forces
    params = {"ecut_eV": 300, "kpts": [2, 2, 2],
              "convergence": {"energy": 1e-7, "density": 1e-6}}
    calc = get_calculator({"name": "gpaw", "params": params})
    b = a.copy()
    b.calc = calc
    e = b.get_potential_energy()
    f = b.get_forces()
    s = b.get_stress()
    assert np.isfinite(e) and -12.0 < e < -4.0  # eV for one LiCl pair
    np.testing.assert_allclose(f.sum(axis=0), 0.0, atol=5e-3)  # Newton's third law
    assert f[1, 0] < -0.02 and np.all(np.isfinite(s))  # the displaced Cl is pushed back
    # the force is the derivative of the energy (central difference, 0.02 Å steps)
    e_pm = []
    for dx in (0.02, -0.02):
        c = a.copy()
        c.positions[1, 0] += dx
        c.calc = calc
        e_pm.append(c.get_potential_energy())
    assert -(e_pm[0] - e_pm[1]) / 0.04 == pytest.approx(f[1, 0], rel=0.05, abs=2e-3)
    # the D3 part binds: PBE-D3 energy is below plain PBE's
    plain = a.copy()
    plain.calc = get_calculator({"name": "gpaw", "params": {**params, "d3": "none"}})
    assert e < plain.get_potential_energy() - 0.05

    store = DFTLabelStore(tmp_path, params)
    a.info["label"] = "licl"
    got = list(label_atoms([a], store, log=lambda m: None))
    assert len(got) == 1 and got[0].get_potential_energy() == pytest.approx(e, abs=1e-6)
    np.testing.assert_allclose(got[0].get_forces(), f, atol=1e-6)
    # a second pass computes nothing and the file reads back the same numbers
    assert list(label_atoms([a], store, log=lambda m: None)) == []
    back = read_labels(store.path(a))[0]
    assert back.get_potential_energy() == pytest.approx(e, abs=1e-6)
    assert "gpaw" in store.identity["versions"] and store.identity["settings"]["d3"] == "bj"
