"""Onsager transport coefficients, conductivity, Haven ratio and transference numbers.

For species i, j with collective displacements ΔR_i(τ) = Σ_{a∈i} [r_a(t+τ) − r_a(t)]
(barycentric frame: the mass-weighted drift of the whole cell removed), the Onsager
coefficients are (Einstein–Helfand form; e.g. Fong, Self, McCloskey & Persson,
Macromolecules 54, 2575 (2021), and Wheeler & Newman, J. Phys. Chem. B 108, 18353 (2004)):

    L_ij = lim_{τ→∞} ⟨ΔR_i(τ) · ΔR_j(τ)⟩ / (6 τ V k_B T)

with the average over all time origins. Then

- σ = e² Σ_ij z_i z_j L_ij (the full conductivity, all correlations included),
- σ_NE = e² Σ_i z_i² N_i D_i / (V k_B T) from the self (tracer) terms only,
- Haven ratio of the cation: H_R = (self part of L_++) / L_++ = N_+ D_+ · 6τ / ⟨ΔR_+²⟩,
- transference number of species i: t_i = z_i Σ_j z_j L_ij / Σ_jk z_j z_k L_jk
  (Σ_i t_i = 1; in a glass with an immobile network t_+ is near 1 only if the anions
  do not move with the cations).

Slopes are least-squares lines through the time-origin-averaged correlation functions
on a lag window (default: 10 %–50 % of each block's length, past the ballistic and
caging regime for runs of tens of ps and longer).

Uncertainty: the run (or each replica) is cut into ``n_blocks`` contiguous blocks,
each analysed on its own; every quantity is computed from the block-averaged
correlation functions and its 1σ error from the delete-one-block jackknife (Efron
1982), which also handles the ratios H_R and t_i. Collective (distinct) correlations
are far noisier than self terms: expect errors of tens of percent on L_+- and t_+ from
runs that give D to a few percent.

Units: positions Å, times ps, volume Å³, temperature K; L in 1/(eV·Å·ps) is reported
as σ contributions in mS/cm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viglas.chemistry import FORMAL_CHARGES
from viglas.errors import AnalysisError

#: e²/(k_B) with Å²/ps, Å³ -> mS/cm: e² [C²] · (1e-20 m²)/(1e-12 s) / (1e-30 m³ · k_B T [J])
#: gives S/m; × 10 gives mS/cm.
_E_C = 1.602176634e-19
_KB_J_K = 1.380649e-23

__all__ = ["OnsagerResult", "onsager_transport", "collective_msd", "onsager_from_trajectory"]



def _xcorr_msd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """⟨(a(t+τ) − a(t)) · (b(t+τ) − b(t))⟩ over all origins, for every lag τ (FFT).

    ``a``, ``b``: (n_frames, 3). Returns (n_frames,)."""
    n = len(a)
    nfft = 1 << (2 * n - 1).bit_length()
    fa = np.fft.rfft(a, nfft, axis=0)
    fb = np.fft.rfft(b, nfft, axis=0)
    # S_ab(τ) = Σ_t a(t+τ)·b(t), S_ba(τ) = Σ_t b(t+τ)·a(t)
    s_ab = np.fft.irfft(np.conj(fb) * fa, nfft, axis=0)[:n].sum(axis=1)
    s_ba = np.fft.irfft(np.conj(fa) * fb, nfft, axis=0)[:n].sum(axis=1)
    ab = np.einsum("ij,ij->i", a, b)
    # Σ_{t=0}^{n-1-τ} [a(t+τ)b(t+τ) + a(t)b(t)]
    cum = np.concatenate([[0.0], np.cumsum(ab)])
    tail = cum[n] - cum[np.arange(n)]          # Σ_{t=τ}^{n-1} ab(t)
    head = cum[n - np.arange(n)]               # Σ_{t=0}^{n-1-τ} ab(t)
    count = n - np.arange(n)
    return (tail + head - s_ab - s_ba) / count


def collective_msd(positions: np.ndarray, groups: Mapping[str, np.ndarray],
                   masses: np.ndarray | None = None) -> dict[tuple[str, str], np.ndarray]:
    """⟨ΔR_i · ΔR_j⟩(τ) (Å²) for every pair of groups, plus ("self", i) = Σ_a ⟨Δr_a²⟩.

    ``positions``: unwrapped (n_frames, n_atoms, 3) Å; ``groups``: name -> atom indices;
    ``masses`` (amu): remove the mass-weighted drift of the whole cell first."""
    x = np.asarray(positions, float)
    if masses is not None:
        m = np.asarray(masses, float)
        com = np.einsum("a,tad->td", m, x) / m.sum()
        x = x - com[:, None, :]
    names = list(groups)
    R = {g: x[:, np.asarray(groups[g]), :].sum(axis=1) for g in names}
    out: dict[tuple[str, str], np.ndarray] = {}
    for i, gi in enumerate(names):
        for gj in names[i:]:
            out[(gi, gj)] = _xcorr_msd(R[gi], R[gj])
        idx = np.asarray(groups[gi])
        sd = np.zeros(len(x))
        for a in idx:
            sd += _xcorr_msd(x[:, a, :], x[:, a, :])
        out[("self", gi)] = sd
    return out


@dataclass
class OnsagerResult:
    """Onsager coefficients (as σ contributions, mS/cm), σ, Haven ratio, transference."""

    species: list[str]
    charges: dict[str, float]
    sigma_ij_mS_cm: dict[str, float]
    sigma_ij_err_mS_cm: dict[str, float]
    sigma_mS_cm: float
    sigma_err_mS_cm: float
    sigma_ne_mS_cm: float
    sigma_ne_err_mS_cm: float
    haven_ratio: float | None
    haven_ratio_err: float | None
    transference: dict[str, float]
    transference_err: dict[str, float]
    cation: str
    n_blocks: int
    window_fraction: tuple[float, float]
    temperature_K: float
    volume_A3: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["window_fraction"] = list(self.window_fraction)
        return d


def _slope(t: np.ndarray, y: np.ndarray) -> float:
    tt = t - t.mean()
    return float(np.sum(tt * (y - y.mean())) / np.sum(tt * tt))


def onsager_transport(runs: Sequence[np.ndarray], dt_ps: float, species: Sequence[str],
                      charges: Mapping[str, float], temperature_K: float, volume_A3: float,
                      *, masses: np.ndarray | None = None, cation: str = "Li",
                      n_blocks: int = 5, window: tuple[float, float] = (0.1, 0.5),
                      ) -> OnsagerResult:
    """Onsager coefficients, σ, σ_NE, Haven ratio and transference numbers with
    jackknife errors (see the module docstring).

    ``runs``: one or more unwrapped trajectories (n_frames, n_atoms, 3) in Å with the
    same atoms (replicas); each is cut into ``n_blocks`` blocks (total blocks = runs ×
    n_blocks, at least 3 needed). ``species``: symbol per atom; ``charges``: formal
    charge per symbol (e); ``dt_ps``: frame spacing; ``window``: fit window as fractions
    of the block length.
    """
    species = [str(s) for s in species]
    names = list(dict.fromkeys(species))
    missing = [s for s in names if s not in charges]
    if missing:
        raise AnalysisError("no charge for these species", field="charges", value=missing,
                            allowed="a charge for every species in the cell")
    if cation not in names:
        raise AnalysisError("cation not in the cell", field="cation", value=cation,
                            allowed=", ".join(names))
    if not (0.0 <= window[0] < window[1] <= 1.0):
        raise AnalysisError("fit window must be fractions 0 <= start < end <= 1",
                            field="window", value=window)
    if dt_ps <= 0 or temperature_K <= 0 or volume_A3 <= 0:
        raise AnalysisError("dt_ps, temperature_K and volume_A3 must be > 0",
                            field="dt_ps", value=(dt_ps, temperature_K, volume_A3))
    groups = {s: np.flatnonzero(np.asarray(species) == s) for s in names}
    blocks: list[dict] = []
    for x in runs:
        x = np.asarray(x, float)
        if x.ndim != 3 or x.shape[1] != len(species):
            raise AnalysisError("positions must be (n_frames, n_atoms, 3) with one species "
                                "per atom", field="runs", value=getattr(x, "shape", None))
        nb = len(x) // n_blocks
        if nb < 20:
            raise AnalysisError("blocks too short for a slope (fewer than 20 frames)",
                                field="n_blocks", value=n_blocks,
                                allowed=f"<= {len(x) // 20} for {len(x)} frames")
        for b in range(n_blocks):
            blocks.append(collective_msd(x[b * nb:(b + 1) * nb], groups, masses))
    if len(blocks) < 3:
        raise AnalysisError("need at least 3 blocks for an error estimate", field="n_blocks",
                            value=len(blocks), allowed=">= 3 (blocks x replicas)")
    n_lag = min(len(next(iter(b.values()))) for b in blocks)
    t = np.arange(n_lag) * dt_ps
    lo, hi = int(window[0] * n_lag), max(int(window[1] * n_lag), int(window[0] * n_lag) + 3)
    sel = slice(lo, min(hi, n_lag))
    keys = list(blocks[0])
    # slopes (Å²/ps) per block; the estimators are linear in the block means
    slopes = np.array([[_slope(t[sel], b[k][:n_lag][sel]) for k in keys] for b in blocks])
    conv = _E_C ** 2 * 1e-20 / 1e-12 / (1e-30 * volume_A3 * _KB_J_K * temperature_K) / 6.0
    conv *= 10.0  # S/m -> mS/cm

    def estimates(s: np.ndarray) -> dict[str, float]:
        k = dict(zip(keys, s))
        out: dict[str, float] = {}
        sig = 0.0
        for i, gi in enumerate(names):
            for gj in names[i:]:
                c = k[(gi, gj)] * charges[gi] * charges[gj] * conv * (1 if gi == gj else 2)
                out[f"{gi}-{gj}"] = c
                sig += c
        out["sigma"] = sig
        out["sigma_ne"] = sum(k[("self", g)] * charges[g] ** 2 * conv for g in names)
        out["haven"] = k[("self", cation)] / k[(cation, cation)] if k[(cation, cation)] \
            else float("nan")
        for gi in names:
            num = 0.0
            for gj in names:
                kk = (gi, gj) if (gi, gj) in k else (gj, gi)
                num += charges[gi] * charges[gj] * k[kk] * conv
            out[f"t_{gi}"] = num / sig if sig else float("nan")
        return out

    full = estimates(slopes.mean(axis=0))
    nbk = len(blocks)
    jk = [estimates(np.delete(slopes, i, axis=0).mean(axis=0)) for i in range(nbk)]
    err = {k: float(np.sqrt((nbk - 1) / nbk * np.sum(
        (np.array([j[k] for j in jk]) - np.mean([j[k] for j in jk])) ** 2))) for k in full}
    notes = []
    if full["sigma"] <= 0 or full["sigma"] < 2 * err["sigma"]:
        notes.append("collective conductivity not resolved (sigma < 2 sd): the Haven ratio "
                     "and transference numbers are not meaningful; run longer")
    pairs = [k for k in full if "-" in k]
    return OnsagerResult(
        species=names, charges={g: float(charges[g]) for g in names},
        sigma_ij_mS_cm={k: float(full[k]) for k in pairs},
        sigma_ij_err_mS_cm={k: err[k] for k in pairs},
        sigma_mS_cm=float(full["sigma"]), sigma_err_mS_cm=err["sigma"],
        sigma_ne_mS_cm=float(full["sigma_ne"]), sigma_ne_err_mS_cm=err["sigma_ne"],
        haven_ratio=float(full["haven"]), haven_ratio_err=err["haven"],
        transference={g: float(full[f"t_{g}"]) for g in names},
        transference_err={g: err[f"t_{g}"] for g in names}, cation=cation,
        n_blocks=nbk, window_fraction=(float(window[0]), float(window[1])),
        temperature_K=float(temperature_K), volume_A3=float(volume_A3), notes=notes)


def onsager_from_trajectory(paths, temperature_K: float, *, cation: str = "Li",
                            charges: Mapping[str, float] | None = None, n_blocks: int = 5,
                            start_fs: float = 0.0, window: tuple[float, float] = (0.1, 0.5),
                            ) -> OnsagerResult:
    """:func:`onsager_transport` on one trajectory file or several replicas (any format
    :func:`viglas.analysis.io.read_trajectory` reads); formal charges by default.
    Positions of all atoms are read unwrapped, without drift correction (the
    barycentric frame is applied inside)."""
    from viglas.analysis.io import read_trajectory

    if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__"):
        paths = [paths]
    runs, dt, vol, species, masses = [], None, [], None, None
    for p in paths:
        tr = read_trajectory(p, species=None, drift="none", start_fs=start_fs)
        if species is not None and list(tr.symbols) != species:
            raise AnalysisError("replicas must hold the same atoms in the same order",
                                field="paths", value=str(p))
        species, masses = list(tr.symbols), tr.masses
        dt = tr.dt_fs if dt is None else dt
        if abs(tr.dt_fs - dt) > 1e-6 * dt:
            raise AnalysisError("replicas must share the frame spacing", field="paths",
                                value=str(p))
        runs.append(tr.positions)
        vol.append(tr.volume_A3)
    return onsager_transport(runs, dt / 1000.0, species, charges or FORMAL_CHARGES,
                             temperature_K, float(np.mean(vol)), masses=masses,
                             cation=cation, n_blocks=n_blocks, window=window)
