"""The ACE-MLP correction's evaluator: exact derivatives, invariance, and its place in an
ionic+delta parameter file."""

import numpy as np
import pytest
from ase import Atoms
from scipy.spatial.transform import Rotation

from viglas.errors import CalculatorError
from viglas.potentials import acemlp
from viglas.potentials.acemlp import ACEMLPModel

ELEMENTS = ["Li", "Na", "Al", "Ga", "In", "B", "Cl", "O"]


def random_model(seed=0, N=3, K=4, H=4, rc=4.5):
    rng = np.random.default_rng(seed)
    ne = len(ELEMENTS)
    nd = N + 4 * N * (N + 1) // 2 + N * N * (N + 1) // 2 + N * (N + 1) * (N + 2) // 6
    return {"schema": acemlp.SCHEMA, "elements": ELEMENTS, "rc_A": rc, "pmax": 3,
            "arrays": {"W": rng.normal(size=(ne, ne, N, K)).tolist(),
                       "mean": rng.normal(scale=0.1, size=(ne, nd)).tolist(),
                       "std": rng.uniform(0.5, 2.0, size=(ne, nd)).tolist(),
                       "bias": rng.normal(size=ne).tolist(),
                       "lin": rng.normal(scale=0.05, size=(ne, nd)).tolist(),
                       "w1": rng.normal(scale=0.2, size=(ne, nd, H)).tolist(),
                       "b1": rng.normal(size=(ne, H)).tolist(),
                       "w2": rng.normal(scale=0.2, size=(ne, H)).tolist()}}


def glass(seed=1):
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3) * 2.4
    cell = np.array([[7.2, 0.0, 0.0], [0.3, 7.1, 0.0], [-0.2, 0.4, 7.3]])
    syms = [["Li", "Al", "Cl", "O", "In", "Cl"][k % 6] for k in range(len(g))]
    return Atoms(syms, positions=g + rng.normal(scale=0.15, size=g.shape), cell=cell,
                 pbc=True)


def test_forces_and_stress_are_the_derivatives_of_the_energy():
    m = ACEMLPModel(random_model())
    a = glass()
    e, f, s = acemlp.evaluate(m, a)
    assert np.isfinite(e) and np.abs(f).max() > 1e-3
    h = 1e-5
    for atom, c in ((0, 0), (5, 1), (13, 2), (26, 0)):
        b = a.copy()
        b.positions[atom, c] += h
        ep = acemlp.evaluate(m, b)[0]
        b.positions[atom, c] -= 2 * h
        em = acemlp.evaluate(m, b)[0]
        assert f[atom, c] == pytest.approx(-(ep - em) / (2 * h), rel=1e-5, abs=1e-7)
    voigt = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    for k, (x, y) in enumerate(voigt):
        out = []
        for sgn in (1, -1):
            eps = np.eye(3)
            eps[x, y] += sgn * h / (1 if x == y else 2)
            eps[y, x] += 0 if x == y else sgn * h / 2
            b = a.copy()
            b.set_cell(a.cell.array @ eps, scale_atoms=True)
            out.append(acemlp.evaluate(m, b)[0])
        assert s[k] == pytest.approx((out[0] - out[1]) / (2 * h) / a.get_volume(),
                                     rel=1e-5, abs=1e-9)


def test_energy_is_invariant_and_forces_rotate_with_the_structure():
    m = ACEMLPModel(random_model(seed=3))
    a = glass(seed=4)
    e, f, _ = acemlp.evaluate(m, a)
    rot = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()
    b = a.copy()
    b.set_cell(a.cell.array @ rot.T, scale_atoms=False)
    b.positions = a.positions @ rot.T + np.array([0.7, -0.2, 1.3])
    e2, f2, _ = acemlp.evaluate(m, b)
    assert e2 == pytest.approx(e, rel=1e-10)
    np.testing.assert_allclose(f2, f @ rot.T, atol=1e-9)
    perm = np.random.default_rng(0).permutation(len(a))
    e3, f3, _ = acemlp.evaluate(m, a[perm])
    assert e3 == pytest.approx(e, rel=1e-10)
    np.testing.assert_allclose(f3, f[perm], atol=1e-9)


def test_a_delta_file_with_a_correction_adds_it(tmp_path):
    import json

    from viglas.potentials.delta import load_delta_file, make_potential

    d = load_delta_file("dft-delta")
    d.pop("acemlp", None)  # the linear set alone (the default may carry a correction)
    q = tmp_path / "linear.json"
    q.write_text(json.dumps(d))
    d["acemlp"] = random_model(seed=5, rc=5.0)
    p = tmp_path / "stack.json"
    p.write_text(json.dumps(d))
    a = glass(seed=6)
    base, stack = a.copy(), a.copy()
    base.calc = make_potential(str(q))
    stack.calc = make_potential(str(p))
    e, f, s = acemlp.evaluate(ACEMLPModel(d["acemlp"]), a)
    assert stack.get_potential_energy() == pytest.approx(base.get_potential_energy() + e,
                                                         rel=1e-10)
    np.testing.assert_allclose(stack.get_forces(), base.get_forces() + f, atol=1e-9)
    np.testing.assert_allclose(stack.get_stress(), base.get_stress() + s, atol=1e-12)
    ident = stack.calc.params.model_dump()["acemlp"]
    assert ident["schema"] == acemlp.SCHEMA and len(ident["arrays_sha256"]) == 20
    # the scoring path of the fit reports (delta_file_predictor) adds it too
    from viglas.potentials.delta_fit import delta_file_predictor

    a.info["label"] = "x"
    row = delta_file_predictor(p)[1]([a])[0]
    assert row["energy"] == pytest.approx(stack.get_potential_energy(), rel=1e-10)
    np.testing.assert_allclose(row["forces"], stack.get_forces(), atol=1e-9)


def test_training_labels_of_a_stack_join_both_fits():
    from viglas.potentials.delta import load_delta_file, training_labels

    d = load_delta_file("dft-delta")
    linear = set(d["delta"]["meta"]["fit"]["train_labels"])
    d["acemlp"] = random_model()
    with pytest.raises(CalculatorError, match="train_labels"):
        training_labels(d)  # a correction that does not say what it saw
    d["acemlp"]["meta"] = {"train_labels": ["r99/LiAlCl4/npt300_0GPa/s1"]}
    assert training_labels(d) == linear | {"r99/LiAlCl4/npt300_0GPa/s1"}


def test_bad_model_files_are_refused_with_the_reason():
    d = random_model()
    with pytest.raises(CalculatorError, match="ACE-MLP"):
        ACEMLPModel({**d, "schema": "other/1"})
    bad = {**d, "arrays": {**d["arrays"], "mean": [[0.0]] * 8}}
    with pytest.raises(CalculatorError, match="descriptor"):
        ACEMLPModel(bad)
    m = ACEMLPModel(d)
    with pytest.raises(CalculatorError, match="Fe"):
        m.types_of(["Li", "Fe"])


def test_numba_evaluator_matches_the_torch_model_it_is_trained_as():
    """The model is trained in torch (scripts/fs_ace_probe.py, forces and stress by
    autograd) and run in MD by the numba evaluator with hand-written derivatives: both
    must be the same function of the same arrays."""
    import importlib.util
    import sys
    from pathlib import Path

    torch = pytest.importorskip("torch")
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    sys.path.insert(0, str(scripts))
    try:
        spec = importlib.util.spec_from_file_location("fs_ace_probe", scripts / "fs_ace_probe.py")
        probe = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(probe)
    finally:
        sys.path.remove(str(scripts))
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(3)
        model = probe.FSACE(rc=4.5, nrad=3, hidden=5)
        with torch.no_grad():  # the readout starts at zero: give every array a value
            for name in ("mean", "lin", "b1", "w2", "bias"):
                getattr(model, name).normal_(0.0, 0.2)
            model.std.uniform_(0.5, 2.0)
        a = glass(seed=4)
        E, F, S = probe.predict(model, [probe.frame_graph(a, 4.5)])
        d = {"schema": acemlp.SCHEMA, "elements": probe.ELEMENTS, "rc_A": 4.5, "pmax": 3,
             "arrays": probe.model_arrays(model.state_dict(), digits=None)}
    finally:
        torch.set_default_dtype(old)
    e, f, s = acemlp.evaluate(ACEMLPModel(d), a)
    E = E.detach()
    assert abs(float(E[0])) > 1e-2 and np.abs(f).max() > 1e-2
    assert e == pytest.approx(float(E[0]), rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(f, F[0].detach().numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(s, S[0].detach().numpy(), rtol=1e-8, atol=1e-12)


def test_the_default_is_the_linear_set_plus_its_correction():
    """dft-delta carries an ACE-MLP correction fitted to what dft-delta-linear (F14)
    leaves, so its linear part must be exactly that set; dft-delta-linear has none."""
    from viglas.potentials.delta import load_delta_file, make_potential, training_labels

    stack, linear = load_delta_file("dft-delta"), load_delta_file("dft-delta-linear")
    assert "acemlp" in stack and "acemlp" not in linear
    assert stack["delta"] == linear["delta"] and stack["baseline"] == linear["baseline"]
    assert "F14" in stack["acemlp"]["meta"]["residual_of"]
    assert training_labels(stack) > training_labels(linear)
    a = glass(seed=7)
    b = a.copy()
    a.calc, b.calc = make_potential("dft-delta"), make_potential("dft-delta-linear")
    e, f, s = acemlp.evaluate(ACEMLPModel(stack["acemlp"]), a)
    assert a.get_potential_energy() == pytest.approx(b.get_potential_energy() + e, rel=1e-10)
    np.testing.assert_allclose(a.get_forces(), b.get_forces() + f, atol=1e-9)
