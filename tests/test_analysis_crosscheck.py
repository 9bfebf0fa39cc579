"""Cross-checks against pymatgen-analysis-diffusion and kinisi (dev extra).

Data: the Li7P3S11-type AIMD trajectory ``example_XDATCAR.gz`` shipped inside kinisi's
test inputs (140 frames, 192 Li, 416 atoms, 2 fs x 50 steps between frames).
pymatgen-analysis-diffusion ships no trajectory in its wheel, so it is run on the
same file. Both tests skip cleanly when a package is missing.
"""

from __future__ import annotations

import gzip
import shutil
import warnings

import numpy as np
import pytest


@pytest.fixture(scope="module")
def xdatcar(tmp_path_factory):
    pytest.importorskip("kinisi")
    from kinisi.tests import TEST_FILE_PATH

    src = TEST_FILE_PATH / "example_XDATCAR.gz"
    if not src.exists():
        pytest.skip("kinisi test data not installed")
    dst = tmp_path_factory.mktemp("kinisi") / "XDATCAR"
    with gzip.open(src, "rb") as f, open(dst, "wb") as g:
        shutil.copyfileobj(f, g)
    return dst


def test_msd_identical_to_pymatgen_analysis_diffusion(xdatcar):
    pytest.importorskip("pymatgen.analysis.diffusion.analyzer")
    import ase.io
    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer
    from pymatgen.core import Lattice, Structure

    from viglas.analysis import msd_fft, read_trajectory

    frames = ase.io.read(str(xdatcar), index=":", format="vasp-xdatcar")
    species = frames[0].get_chemical_symbols()
    structs = [Structure(Lattice(a.cell.array), species, a.get_scaled_positions(wrap=False))
               for a in frames]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        da = DiffusionAnalyzer.from_structures(structs, "Li", 800, 2, 50, smoothed="max")
    # pymatgen removes the unweighted mean displacement of the framework
    d = read_trajectory(xdatcar, timestep_fs=2.0, stride=50, species="Li",
                        drift="framework", com_weights="equal")
    m = msd_fft(d.positions, d.dt_fs, species="Li")
    idx = np.rint(np.asarray(da.dt) / d.dt_fs).astype(int)
    assert len(idx) > 50
    np.testing.assert_allclose(m.msd_A2[idx], da.msd, rtol=1e-6)


def test_diffusion_agrees_with_kinisi_within_uncertainty(xdatcar):
    kinisi = pytest.importorskip("kinisi")
    del kinisi
    import ase.io
    import scipp as sc
    from kinisi.analyze import DiffusionAnalyzer

    from viglas.analysis import diffusion_coefficient, msd_fft, read_trajectory

    frames = ase.io.read(str(xdatcar), index=":", format="vasp-xdatcar")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ka = DiffusionAnalyzer.from_ase(frames, specie="Li", time_step=2.0 * sc.Unit("fs"),
                                        step_skip=50 * sc.Unit("dimensionless"), progress=False)
        ka.diffusion(2.0 * sc.Unit("ps"), progress=False,  # kinisi defaults: 1000 x 32 MCMC
                     random_state=np.random.RandomState(0))
    dk = np.asarray(ka.D.values)
    k_mean, k_std = float(dk.mean()), float(dk.std())
    d = read_trajectory(xdatcar, timestep_fs=2.0, stride=50, species="Li", drift="system")
    res = diffusion_coefficient(msd_fft(d.positions, d.dt_fs, species="Li"), t_start_fs=2000.0,
                                t_end_fs=13900.0)
    assert abs(res.d_cm2_s - k_mean) < np.hypot(res.d_err_cm2_s, k_std)
    # error bars of the same order (kinisi's Bayesian GLS vs ours)
    assert 0.5 < res.d_err_cm2_s / k_std < 2.5
