"""The ionic+delta potential: exact derivatives, linear fit, file round trip, registry."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from viglas.potentials.delta import (
    DeltaIonicPotential,
    DeltaModel,
    default_r3,
    design_rows,
    evaluate,
    make_potential,
    save_delta_file,
)
from viglas.potentials.delta_fit import DeltaFitSettings, delta_predictor, fit_delta, new_model


def _oxychloride(seed: int = 0, rattle: float = 0.08):
    """LiAlCl4 prototype (24 atoms) doubled, 4 Cl -> 2 O (+2 vacancies), rattled."""
    from viglas.structures import load_prototype

    a = load_prototype("LiAlCl4").repeat((1, 1, 2))
    a.info = {}
    cl = [k for k, s in enumerate(a.get_chemical_symbols()) if s == "Cl"]
    rng = np.random.default_rng(seed)
    pick = rng.choice(cl, 4, replace=False)
    a.symbols[pick[:2]] = "O"
    del a[sorted(pick[2:], reverse=True)]
    a.rattle(rattle, seed=seed)
    return a


def _model(a, seed=1, scale=0.02):
    m = new_model([a], DeltaFitSettings(h_A=0.4, lmax=3))
    m.coef = np.random.default_rng(seed).normal(size=m.n_coef) * scale
    return m


def _assert_exact_derivatives(m, a, atoms, strains, h=1e-5):
    """Central finite differences of the correction energy: forces on ``atoms`` (all
    three components, to 1e-7 eV/Å) and the stress components ``strains`` ((p, q,
    Voigt index), to 1e-9 eV/Å³). Returns (energy, forces, stress)."""
    e, f, s = evaluate(m, a)
    for i in atoms:
        for k in range(3):
            b = a.copy()
            b.positions[i, k] += h
            ep = evaluate(m, b)[0]
            b.positions[i, k] -= 2 * h
            em = evaluate(m, b)[0]
            assert -(ep - em) / (2 * h) == pytest.approx(f[i, k], abs=1e-7)
    V = a.get_volume()
    for p, q, voigt in strains:
        def strained(eps, p=p, q=q):
            b = a.copy()
            E = np.eye(3)
            E[p, q] += eps / 2
            E[q, p] += eps / 2
            b.set_cell(a.cell.array @ E, scale_atoms=True)
            return evaluate(m, b)[0]
        assert (strained(h) - strained(-h)) / (2 * h) / V == pytest.approx(s[voigt], abs=1e-9)
    return e, f, s


def test_forces_and_stress_are_exact_derivatives():
    a = _oxychloride()
    m = _model(a)
    rng = np.random.default_rng(3)
    _, f, _ = _assert_exact_derivatives(
        m, a, rng.choice(len(a), 6, replace=False),
        [(0, 0, 0), (1, 1, 1), (2, 2, 2), (1, 2, 3), (0, 2, 4), (0, 1, 5)])
    # momentum: the correction's forces sum to zero
    assert np.abs(f.sum(axis=0)).max() < 1e-10


def test_design_rows_are_the_evaluation():
    a = _oxychloride(seed=2)
    m = _model(a, seed=5)
    e, f, s = evaluate(m, a)
    ef, ff, sf = design_rows(m, a)
    assert ef @ m.coef == pytest.approx(e, abs=1e-10)
    assert np.allclose(ff @ m.coef, f, atol=1e-10)
    assert np.allclose(sf @ m.coef, s, atol=1e-12)


def test_correction_is_off_below_the_data_range():
    """Below the shortest distance of the training data the pair correction is switched
    off (only the physical ionic repulsion acts there); above lo + w it is the spline."""
    from ase import Atoms

    a = _oxychloride()
    m = _model(a)
    t_al, t_cl = m.species.index("Al"), m.species.index("Cl")
    lo = m.pair_lo[t_al, t_cl]
    assert lo > 1.5
    only = np.zeros_like(m.coef)
    o, k = m.pair_off[t_al, t_cl], m.pair_nk[t_al, t_cl]
    only[o:o + k] = m.coef[o:o + k]
    m.coef = only

    def pair(r):  # one Al-Cl pair in a 14 A box: no other pair within the cutoff
        b = Atoms("AlCl", positions=[[1, 1, 1], [1 + r, 1, 1]], cell=[14, 14, 14], pbc=True)
        return evaluate(m, b)

    e1, f1, _ = pair(lo - 0.4)
    e2, f2, _ = pair(lo - 0.05)
    assert e1 == 0.0 and e2 == 0.0 and np.all(f1 == 0.0) and np.all(f2 == 0.0)
    e3, f3, _ = pair(lo + 0.5)
    assert e3 != 0.0 and np.abs(f3).max() > 0


def test_fit_recovers_a_known_correction(tmp_path):
    """Synthetic 'DFT' = ionic default + a known correction: the fit reproduces held-out
    forces and stresses (it cannot reproduce them without the right derivatives)."""
    frames = [_oxychloride(seed=s, rattle=0.15) for s in range(12)]
    truth = new_model(frames, DeltaFitSettings(h_A=0.4, lmax=3))
    truth.coef = np.random.default_rng(7).normal(size=truth.n_coef) * 0.01
    truth.coef[: len(truth.species)] = [-3.0, -2.0, -1.0, -4.0][: len(truth.species)]
    base = delta_predictor(DeltaModel.from_dict({**truth.to_dict(),
                                                 "coef_eV": [0.0] * truth.n_coef}))(frames)
    for a, b in zip(frames, base):
        e, f, s = evaluate(truth, a)
        a.calc = SinglePointCalculator(a, energy=b["energy"] + e, forces=b["forces"] + f,
                                       stress=b["stress"] + s)
    train, valid = frames[:10], frames[10:]
    model, rec = fit_delta(train, None, DeltaFitSettings(h_A=0.4, lmax=3, lambdas=(1e-8,),
                                                         ridge_eps=1e-6, cv_folds=2),
                           log=lambda *_: None)
    pred = delta_predictor(model)(valid)
    for a, p in zip(valid, pred):
        ref = a.calc.results
        assert np.sqrt(np.mean((p["forces"] - ref["forces"]) ** 2)) < 0.02 * np.sqrt(
            np.mean(ref["forces"] ** 2))
        assert np.abs(p["stress"] - ref["stress"]).max() < 0.02 * np.abs(ref["stress"]).max()
    # the file round trip and the registry give the same calculator
    path = save_delta_file(model, None, tmp_path / "delta.json")
    from viglas.calculators import get_calculator, supported_elements

    c1 = get_calculator({"name": "ionic", "params": {"parameters": str(path)}})
    assert isinstance(c1, DeltaIonicPotential)
    assert {"Li", "Al", "Cl", "O"} <= supported_elements(
        {"name": "ionic", "params": {"parameters": str(path)}})
    a = valid[0].copy()
    a.calc = c1
    assert np.allclose(a.get_forces(), pred[0]["forces"], atol=1e-9)
    assert a.get_potential_energy() == pytest.approx(pred[0]["energy"], abs=1e-8)
    # Verlet list reuse: a small move gives the same result as a fresh calculator
    a.positions[0] += 0.05
    b = a.copy()
    b.calc = make_potential(str(path))
    assert np.allclose(a.get_forces(), b.get_forces(), atol=1e-9)


def test_three_body_cutoffs_are_cation_anion_only():
    t = default_r3(["Al", "Cl", "Li", "O"])
    assert t[0, 1] > 2.5 and t[0, 3] > 2.0 and t[2, 1] > 2.9
    assert t[0, 2] == 0 and t[1, 3] == 0 and t[0, 0] == 0 and t[1, 1] == 0


def test_shipped_delta_set_by_name_if_present():
    from viglas.potentials.delta import SHIPPED_DELTA, is_delta_file

    if not SHIPPED_DELTA["dft-delta"].exists():
        pytest.skip("no shipped dft-delta set in this checkout")
    assert is_delta_file("dft-delta")
    c = make_potential("dft-delta")
    assert isinstance(c, DeltaIonicPotential)
    a = _oxychloride()
    a.calc = c
    assert np.isfinite(a.get_potential_energy()) and a.get_forces().shape == (len(a), 3)


def _ace_model(a, pairs="opposite", seed=1, scale=0.02, kappa=0.0, r0_mode="global"):
    m = new_model([a], DeltaFitSettings(h_A=0.4, lmax=3, ace_rc_A=5.0, ace_nr=3,
                                        ace_pmax=3, ace_pairs=pairs, ace_kappa_per_A=kappa,
                                        ace_r0_mode=r0_mode))
    m.coef = np.random.default_rng(seed).normal(size=m.n_coef) * scale
    return m


@pytest.mark.parametrize("pairs, kappa, r0_mode", [
    ("opposite", 0.0, "global"), ("all", 0.0, "global"), ("all", 0.8, "pair")])
def test_ace_term_forces_stress_and_design_rows_are_exact(pairs, kappa, r0_mode):
    """The body-order-3 ACE block: forces and stress are the derivatives of its energy,
    the design rows give the evaluation, and the energy is rotation invariant; also
    with the splines on the transformed distance (kappa > 0)."""
    from scipy.spatial.transform import Rotation

    a = _oxychloride(seed=4)
    m = _ace_model(a, pairs, kappa=kappa, r0_mode=r0_mode)
    if r0_mode == "pair":  # every pair's range starts at its shortest distance here
        # each pair's ACE range starts 0.5 A below its shortest distance (0.05 A grid),
        # never below ace_r0 and never within 1 A of the cutoff
        from viglas.potentials.delta_fit import min_pair_distances

        t = m.ace_r0_table
        want = np.floor((min_pair_distances([a], m.species, m.ace_rc) - 0.5) / 0.05) * 0.05
        want = np.where((want > m.ace_r0) & (want < m.ace_rc - 1.0), want, m.ace_r0)
        assert np.allclose(t, want) and len(np.unique(t)) >= 6
    assert m.use_ace and len(m.ace_blocks) > 0
    n_plain = new_model([a], DeltaFitSettings(h_A=0.4, lmax=3)).n_coef
    assert m.n_coef > n_plain
    e, f, s = _assert_exact_derivatives(m, a, (0, 7, 19), [(0, 0, 0), (1, 2, 3), (0, 1, 5)])
    ef, ff, sf = design_rows(m, a)
    assert ef @ m.coef == pytest.approx(e, abs=1e-9)
    assert np.allclose(ff @ m.coef, f, atol=1e-10)
    assert np.allclose(sf @ m.coef, s, atol=1e-12)
    b = a.copy()
    b.set_cell(a.cell.array @ Rotation.random(random_state=3).as_matrix().T, scale_atoms=True)
    assert evaluate(m, b)[0] == pytest.approx(e, abs=1e-9)
    # ACE columns alone are not zero (the term acts) and vanish beyond their cutoff
    ace_cols = np.arange(m.n_coef) >= int(m.ace_off[m.ace_off >= 0].min())
    assert np.abs(ef[ace_cols]).max() > 0


@pytest.mark.parametrize("kappa, r0_mode", [(0.0, "global"), (0.8, "pair")])
def test_ace_model_file_round_trip(tmp_path, kappa, r0_mode):
    a = _oxychloride(seed=6)
    m = _ace_model(a, kappa=kappa, r0_mode=r0_mode)
    p = save_delta_file(m, None, tmp_path / "ace.json")
    calc = DeltaIonicPotential(p)
    assert calc.model.use_ace and calc.model.n_coef == m.n_coef
    assert calc.model.ace_kappa == kappa
    assert np.array_equal(calc.model.ace_r0_table, m.ace_r0_table)
    # the transform changes the energy (it is not silently dropped)
    if kappa:
        assert evaluate(_ace_model(a), a)[0] != pytest.approx(evaluate(m, a)[0], abs=1e-6)
    assert calc.model.ace_blocks == m.ace_blocks
    e0 = evaluate(m, a)[0]
    assert evaluate(calc.model, a)[0] == pytest.approx(e0, abs=1e-12)


@pytest.mark.parametrize("key, value, field", [
    ("pairs", "oposite", "ace_pairs"), ("nr", 0, "ace_nr"), ("pmax", -1, "ace_pmax"),
    ("r0_A", 6.0, "ace_r0"), ("kappa_per_A", -0.5, "ace_kappa")])
def test_bad_ace_settings_in_a_model_file_are_refused_by_name(tmp_path, key, value, field):
    """A misspelt neighbour-channel name used to act as 'opposite' without a word; every
    ACE setting of a model file is now checked and the error names the field."""
    import json

    from viglas.errors import FitError

    a = _oxychloride(seed=6)
    m = _ace_model(a, "all")
    d = m.to_dict()
    d["ace"][key] = value
    with pytest.raises(FitError) as exc:
        DeltaModel.from_dict(d)
    assert exc.value.field == field
    # the same through the file the calculator loads
    p = save_delta_file(m, None, tmp_path / "ace.json")
    doc = json.loads(p.read_text())
    node = doc if "ace" in doc else next(v for v in doc.values()
                                         if isinstance(v, dict) and "ace" in v)
    node["ace"][key] = value
    p.write_text(json.dumps(doc))
    with pytest.raises(FitError, match=field):
        DeltaIonicPotential(p)


def test_charge_scan_finds_the_charges_of_the_reference(tmp_path):
    """Synthetic 'DFT' = the ionic default with other effective charges (x0.6, alkali
    +1.2, formers +2.8): among three candidate baselines the cross-validated scan must
    pick those charges, reproduce held-out forces, and the model file must carry them."""
    from viglas.errors import FitError
    from viglas.potentials.delta_fit import baseline_with_charges, fit_delta_charges
    from viglas.potentials.dft_fit import ionic_predictor

    frames = [_oxychloride(seed=s, rattle=0.15) for s in range(10)]
    truth = baseline_with_charges(None, 0.6, 1.2, frames)
    assert truth.charges["Li"] == 1.2 and truth.charges["Al"] == pytest.approx(2.8)
    assert truth.charges["O"] == -2.0 and truth.charge_scale == 0.6
    for a, r in zip(frames, ionic_predictor(truth)(frames)):
        a.calc = SinglePointCalculator(a, energy=r["energy"], forces=r["forces"],
                                       stress=r["stress"])
    train, valid = frames[:8], frames[8:]
    st = DeltaFitSettings(h_A=0.4, lmax=3, lambdas=(1e-3, 1e-1), cv_folds=2)
    model, rec, base = fit_delta_charges(train, None, st, [(0.45, 1.0), (0.6, 1.2), (0.7, 1.0)],
                                         log=lambda *_: None)
    assert (rec["charge_scale"], rec["alkali_charge"]) == (0.6, 1.2)
    assert [s["alkali_charge"] for s in rec["charge_scan"]] == [1.0, 1.2, 1.0]
    losses = [s["cv_loss"] for s in rec["charge_scan"]]
    assert losses[1] < 0.1 * min(losses[0], losses[2])
    for a, p in zip(valid, delta_predictor(model, base)(valid)):
        ref = a.calc.results["forces"]
        assert np.sqrt(np.mean((p["forces"] - ref) ** 2)) < 1e-3 * np.sqrt(np.mean(ref ** 2))
    path = save_delta_file(model, base.to_yaml_dict(), tmp_path / "d.json")
    b = valid[0].copy()
    b.calc = make_potential(str(path))
    assert np.allclose(b.get_forces(), valid[0].calc.results["forces"], atol=1e-3)
    # a cell with more alkali than former atoms would be charged: refused by name
    odd = frames[0].copy()
    del odd[[k for k, s in enumerate(odd.get_chemical_symbols()) if s == "Al"][0]]
    with pytest.raises(FitError) as err:
        baseline_with_charges(None, 0.6, 1.2, [odd])
    assert err.value.field == "alkali_charge"
    with pytest.raises(FitError) as err:
        baseline_with_charges(None, -0.1, 1.0)
    assert err.value.field == "charge_scale"


def test_cv_metric_picks_lambda_by_its_own_column():
    """`cv_metric` decides what cross-validation minimises. With noisy energies and clean
    forces the weighted loss wants a strong λ and the force RMSE a weaker one: each
    metric must pick the λ with the lowest value of its own column of the scan (and the
    two differ here). An unknown metric is refused by name."""
    from viglas.errors import FitError

    frames = [_oxychloride(seed=s, rattle=0.15) for s in range(6)]
    truth = new_model(frames, DeltaFitSettings(h_A=0.4, lmax=3))
    truth.coef = np.random.default_rng(3).normal(size=truth.n_coef) * 0.03
    base = delta_predictor(DeltaModel.from_dict({**truth.to_dict(),
                                                 "coef_eV": [0.0] * truth.n_coef}))(frames)
    rng = np.random.default_rng(5)
    for a, b in zip(frames, base):
        e, f, s = evaluate(truth, a)
        a.calc = SinglePointCalculator(a, energy=b["energy"] + e + rng.normal() * 1.0,
                                       forces=b["forces"] + f + rng.normal(size=f.shape) * 0.01,
                                       stress=b["stress"] + s)
    picked = {}
    for metric, key in (("loss", "cv_loss"), ("force", "cv_force_rmse_eV_A")):
        st = DeltaFitSettings(h_A=0.4, lmax=3, lambdas=(1e-4, 1e-2, 1.0, 1e2, 1e4),
                              cv_folds=3, cv_metric=metric)
        _, rec = fit_delta(frames, None, st, log=lambda *_: None)
        assert rec["cv_metric"] == metric
        assert rec["lambda"] == min(rec["lambda_scan"], key=lambda r: r[key])["lambda"]
        picked[metric] = rec["lambda"]
    assert picked["loss"] != picked["force"]
    with pytest.raises(FitError) as err:
        fit_delta(frames, None, DeltaFitSettings(h_A=0.4, lmax=3, cv_metric="r2"),
                  log=lambda *_: None)
    assert err.value.field == "cv_metric"


def test_ace_ridge_floor_regularises_rarely_activated_columns():
    """Each ACE column's ridge follows its own data scale, floored at ``ace_floor``
    times the median ACE scale: a column the training data hardly activates (a rare
    close contact) must not get a vanishing ridge, the others keep their own."""
    from viglas.potentials.delta_fit import _ace_columns, _penalty

    a = _oxychloride(seed=4)
    m = _ace_model(a, "all", kappa=0.5, r0_mode="pair")
    ace = np.flatnonzero(_ace_columns(m))
    diag = np.ones(m.n_coef)
    diag[ace] = np.geomspace(1e-9, 1e3, len(ace))
    med = float(np.median(diag[ace]))
    own = np.diag(_penalty(m, 1e-3, diag, ace_ridge=2.0))
    floored = np.diag(_penalty(m, 1e-3, diag, ace_ridge=2.0, ace_floor=0.1))
    # without a floor the rarest column gets a ridge as small as its data
    assert own[ace[0]] == pytest.approx(2.0 * 1e-9)
    assert floored[ace[0]] == pytest.approx(2.0 * 0.1 * med)
    big = ace[diag[ace] > 0.1 * med]
    assert np.allclose(floored[big], 2.0 * diag[big]) and np.allclose(own[big], floored[big])
    # columns outside the ACE block are untouched
    other = np.setdiff1d(np.arange(m.n_coef), ace)
    assert np.array_equal(own[other], floored[other])


def _field_model(a, seed=1, scale=0.02, ace=True):
    st = DeltaFitSettings(h_A=0.4, lmax=3, field_rc_A=5.0, field_b_per_A=1.8,
                          **({"ace_rc_A": 5.0, "ace_nr": 3} if ace else {}))
    m = new_model([a], st)
    m.coef = np.random.default_rng(seed).normal(size=m.n_coef) * scale
    return m


def test_field_term_forces_stress_and_design_rows_are_exact(tmp_path):
    """The field-squared term (delta_field): forces and stress are the derivatives of its
    energy, its design rows give the evaluation, its energy is sum_s c_s sum_i |E_i|^2
    of the formal charges (checked against a plain numpy sum), and the file keeps it."""
    from ase.neighborlist import neighbor_list

    from viglas.potentials.delta_field import FORMAL_CHARGES, phi

    a = _oxychloride(seed=8)
    m = _field_model(a)
    assert m.use_field and m.labels()[m.field_off] == f"field[{m.species[0]}]"
    assert m.use_ace and m.field_off < int(m.ace_off[m.ace_off >= 0].min())
    e, f, s = _assert_exact_derivatives(m, a, (0, 5, 30), [(0, 0, 0), (1, 2, 3), (0, 1, 5)])
    ef, ff, sf = design_rows(m, a)
    assert ef @ m.coef == pytest.approx(e, abs=1e-9)
    assert np.allclose(ff @ m.coef, f, atol=1e-10)
    assert np.allclose(sf @ m.coef, s, atol=1e-12)
    # the columns are the squared fields, summed per element
    i, j, D = neighbor_list("ijD", a, 5.0)
    q = np.array([FORMAL_CHARGES[x] for x in a.get_chemical_symbols()])
    p, _ = phi(np.linalg.norm(D, axis=1), 5.0, 1.8)
    E = np.zeros((len(a), 3))
    np.add.at(E, i, -(q[j] * p)[:, None] * D)
    U = (E ** 2).sum(1)
    sym = np.array(a.get_chemical_symbols())
    for k, x in enumerate(m.species):
        assert ef[m.field_off + k] == pytest.approx(U[sym == x].sum(), rel=1e-10)
    # the term alone acts, and the model file carries it
    only = np.zeros_like(m.coef)
    only[m.field_off:m.field_off + len(m.species)] = -1.0
    mm = DeltaModel.from_dict({**m.to_dict(), "coef_eV": only.tolist()})
    assert evaluate(mm, a)[0] == pytest.approx(-U.sum(), rel=1e-10)
    calc = DeltaIonicPotential(save_delta_file(m, None, tmp_path / "field.json"))
    assert calc.model.use_field and calc.model.n_coef == m.n_coef
    assert evaluate(calc.model, a)[0] == pytest.approx(e, abs=1e-12)


def test_field_term_charges_in_a_model_file_are_checked():
    from viglas.errors import FitError

    a = _oxychloride(seed=8)
    d = _field_model(a, ace=False).to_dict()
    d["field"]["charges_e"]["Cl"] = -0.5
    with pytest.raises(FitError) as exc:
        DeltaModel.from_dict(d)
    assert exc.value.field == "field.charges_e"


def test_field_columns_get_their_own_small_ridge():
    """The field columns are regularised relative to their own data scale
    (field_ridge), not by the ACE floor or the absolute spline ridge."""
    from viglas.potentials.delta_fit import _penalty

    a = _oxychloride(seed=8)
    m = _field_model(a)
    diag = np.abs(np.random.default_rng(0).normal(size=m.n_coef)) + 0.5
    R = _penalty(m, 1e-3, diag, 1.0, 30.0, field_ridge=1e-2)
    cols = np.arange(m.field_off, m.field_off + len(m.species))
    assert np.allclose(np.diag(R)[cols], 1e-2 * diag[cols])
