"""Window choice of the D estimator on seeded synthetic ions of known D (issue 15).

Generators (all seeded, positions in Å, frames ``dt_fs`` apart, D in Å²/fs):

* ``gaussian_walk`` — independent Gaussian steps;
* ``poisson_hops`` — 2.5 Å jumps in random directions at Poisson times;
* ``caged_hops`` — the same rare jumps plus rattling in the cage (an Ornstein–Uhlenbeck
  displacement of 0.5 Å rms per axis, 100 fs correlation time);
* ``back_hopping`` — anti-correlated hopping: after a forward jump the ion returns
  with probability ``p_back`` after an exponential time of mean ``tau_back_fs``
  (the correlation time), else stays; long-time D = (1-p) a² / (6 (tau_f + p tau_b)),
  short-time D larger by (1+p)/(1-p). Started in the stationary state (burn-in).

The slow test runs >= 100 replicas of each and checks the issue's targets: |bias| <= 2 %,
sd(z) in 0.85–1.2 for z = (D - D_true)/err, 95 % coverage >= 0.9, and <= 2 % of Gaussian
walks with an error bar > 2x the median. The fast test runs few replicas of the
back-hopping case with looser bounds that the previous window rule failed
(mean z +0.95, bias +9 % on these seeds).
"""

from __future__ import annotations

import numpy as np
import pytest

from viglas.analysis import diffusion_coefficient, msd_fft

D_A2_FS = 1.0e-4          # 1e-5 cm^2/s
DT_FS = 10.0


def gaussian_walk(rng, n_frames, n_ions, d_a2fs, dt_fs=DT_FS):
    s = np.sqrt(2 * d_a2fs * dt_fs)
    return np.cumsum(rng.normal(0.0, s, (n_frames, n_ions, 3)), axis=0)


def _unit(rng, shape):
    v = rng.normal(size=tuple(shape) + (3,))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def poisson_hops(rng, n_frames, n_ions, d_a2fs, dt_fs=DT_FS, jump_A=2.5):
    rate = 6 * d_a2fs / jump_A**2 * dt_fs               # jumps per frame
    k = rng.poisson(rate, (n_frames, n_ions))
    kmax = max(int(k.max()), 1)
    v = _unit(rng, (n_frames, n_ions, kmax))
    mask = np.arange(kmax)[None, None, :] < k[..., None]
    return np.cumsum(jump_A * (v * mask[..., None]).sum(axis=2), axis=0)


def caged_hops(rng, n_frames, n_ions, d_a2fs, dt_fs=DT_FS, jump_A=2.5, cage_A=0.5,
               cage_fs=100.0):
    x = poisson_hops(rng, n_frames, n_ions, d_a2fs, dt_fs, jump_A)
    a = np.exp(-dt_fs / cage_fs)
    e = rng.normal(0, cage_A * np.sqrt(1 - a * a), (n_frames, n_ions, 3))
    u = np.empty_like(e)
    u[0] = rng.normal(0, cage_A, (n_ions, 3))
    for k in range(1, n_frames):
        u[k] = a * u[k - 1] + e[k]
    return x + u


def back_hopping(rng, n_frames, n_ions, d_a2fs, dt_fs=DT_FS, jump_A=2.5, p_back=0.6,
                 tau_back_fs=2000.0, vib_A=0.2, burn_fs=50000.0):
    tau_f = (1 - p_back) * jump_A**2 / (6 * d_a2fs) - p_back * tau_back_fs
    assert tau_f > 0, "D too large for this p_back and tau_back"
    frames = np.arange(n_frames) * dt_fs
    out = np.empty((n_frames, n_ions, 3))
    for i in range(n_ions):
        times, vecs = [], []
        t = -burn_fs
        while t < frames[-1]:
            t += rng.exponential(tau_f)
            u = jump_A * _unit(rng, ())
            times.append(t)
            vecs.append(u)
            if rng.random() < p_back:
                t += rng.exponential(tau_back_fs)
                times.append(t)
                vecs.append(-u)
        cum = np.vstack([np.zeros(3), np.cumsum(vecs, axis=0)])
        out[:, i] = cum[np.searchsorted(np.array(times), frames, side="right")]
    if vib_A:
        out += rng.normal(0, vib_A, out.shape)
    return out


def _study(gen, n_rep, seed0, estimator=diffusion_coefficient):
    """Relative errors, z-scores and relative error bars over seeded replicas."""
    rel, z, err = [], [], []
    for r in range(n_rep):
        x = gen(np.random.default_rng(seed0 + r))
        res = estimator(msd_fft(x, DT_FS, charge_msd=False), n_scan=0)
        d = res.d_cm2_s / 0.1                       # Å²/fs
        e = res.d_err_cm2_s / 0.1
        rel.append(d / D_A2_FS - 1)
        z.append((d - D_A2_FS) / e)
        err.append(e / D_A2_FS)
    return np.array(rel), np.array(z), np.array(err)


def _summary(rel, z, err):
    return {"bias": rel.mean(), "bias_se": rel.std(ddof=1) / np.sqrt(len(rel)),
            "sd_z": z.std(ddof=1), "mean_z": z.mean(), "cov68": np.mean(np.abs(z) < 1),
            "cov95": np.mean(np.abs(z) < 1.96), "wide": np.mean(err > 2 * np.median(err)),
            "median_err": np.median(err)}


CASES = {
    "gaussian walk": lambda r: gaussian_walk(r, 10000, 40, D_A2_FS),
    "poisson hops 2.5 A": lambda r: poisson_hops(r, 20000, 64, D_A2_FS),
    "caged rattling + rare hops": lambda r: caged_hops(r, 20000, 64, D_A2_FS),
    "back-hopping p=0.5 tau=3 ps": lambda r: back_hopping(r, 20000, 64, D_A2_FS, p_back=0.5,
                                                          tau_back_fs=3000),
    "back-hopping p=0.6 tau=2 ps": lambda r: back_hopping(r, 20000, 64, D_A2_FS, p_back=0.6,
                                                          tau_back_fs=2000),
    "back-hopping p=0.7 tau=1 ps": lambda r: back_hopping(r, 20000, 64, D_A2_FS, p_back=0.7,
                                                          tau_back_fs=1000),
    "back-hopping p=0.6 tau=5 ps": lambda r: back_hopping(r, 20000, 64, D_A2_FS, p_back=0.6,
                                                          tau_back_fs=5000),
}


def test_back_hopping_generator_has_the_stated_d():
    """The generator itself: long-lag MSD slope of many ions = 6 D (fixed late window)."""
    x = back_hopping(np.random.default_rng(7), 8000, 120, D_A2_FS, p_back=0.7,
                     tau_back_fs=1000.0)
    m = msd_fft(x, DT_FS, charge_msd=False)
    k1, k2 = 1000, 3000                               # 10 and 30 ps, >> tau = 1 ps
    slope = (m.msd_A2[k2] - m.msd_A2[k1]) / ((k2 - k1) * DT_FS)
    assert slope / 6 == pytest.approx(D_A2_FS, rel=0.15)
    # and the short-time MSD is steeper: (1+p)/(1-p) ~ 5.7x, here > 3x
    assert (m.msd_A2[20] - m.msd_A2[5]) / (15 * DT_FS) / 6 > 3 * D_A2_FS


def test_back_hopping_window_is_unbiased_fast():
    """Few replicas, loose bounds. The previous rule (slope within 1 +- 0.15, then a
    plateau check against the latest start) fails all three on these seeds: bias +7.2 %,
    mean z +0.77, 68 % coverage 0.25 (this rule: -1.6 %, -0.16, 0.75)."""
    gen = lambda r: back_hopping(r, 10000, 40, D_A2_FS, p_back=0.6, tau_back_fs=2000)  # noqa: E731
    s = _summary(*_study(gen, 12, 1000))
    assert abs(s["mean_z"]) < 0.45, s
    assert abs(s["bias"]) < 0.05, s
    assert s["cov68"] >= 0.5, s


def test_gaussian_walk_window_start_is_stable_fast():
    """No random walk gets a late start (and a several-fold error bar)."""
    s = _summary(*_study(CASES["gaussian walk"], 20, 1000))
    assert s["wide"] == 0.0, s
    assert abs(s["bias"]) < 3 * s["bias_se"] + 1e-3, s


@pytest.mark.slow
@pytest.mark.calibration
@pytest.mark.parametrize("case", list(CASES))
def test_window_calibration_slow(case):
    """Issue 15 targets over 100 seeded replicas per case."""
    rel, z, err = _study(CASES[case], 100, 20000)
    s = _summary(rel, z, err)
    print(f"{case}: " + ", ".join(f"{k} {v:.4f}" for k, v in s.items()))
    assert abs(s["bias"]) <= 0.02, s
    assert 0.85 <= s["sd_z"] <= 1.2, s
    assert s["cov95"] >= 0.9, s
    if case == "gaussian walk":
        assert s["wide"] <= 0.02, s
