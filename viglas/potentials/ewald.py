"""Reference Ewald sum of point charges (energy, forces, stress) for accuracy checks.

Plain, vectorised numpy; meant for cells of up to a few hundred atoms (the reciprocal
sum is a dense (n_k x N) matrix). Used to measure the error of the damped-shifted-force
(DSF) Coulomb of :class:`viglas.potentials.IonicPotential`.

Energy (eV, k = COULOMB_EV_A in eV Å)::

    E = k sum_{i<j,n} q_i q_j erfc(eta r)/r                       real space
      + k (2 pi / V) sum_{k != 0} exp(-k^2/4 eta^2)/k^2 |S(k)|^2  reciprocal, S = sum q e^{ik.r}
      - k eta/sqrt(pi) sum_i q_i^2                                self
      - k pi Q^2 / (2 V eta^2)                                    neutralising background

Splitting ``eta`` and cut-offs follow from a relative tolerance ``tol``:
``eta = sqrt(-ln tol) / r_cut`` and ``k_max = 2 eta sqrt(-ln tol)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from viglas.errors import CalculatorError
from viglas.units import COULOMB_EV_A


@dataclass
class EwaldResult:
    """Coulomb energy (eV), forces (N, 3) eV/Å and stress (3, 3) eV/Å^3 (ASE sign)."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray
    eta: float
    r_cut: float
    k_max: float
    n_kvectors: int


def ewald_coulomb(positions: np.ndarray, cell: np.ndarray, charges: np.ndarray, *,
                  r_cut: float = 10.0, tol: float = 1e-8) -> EwaldResult:
    """Ewald sum of point charges ``charges`` (e) at ``positions`` (Å) in a periodic ``cell``.

    ``r_cut`` is the real-space cut-off in Å and ``tol`` the relative accuracy target
    (sets the splitting and k-space cut-off). Returns an :class:`EwaldResult`.
    """
    from matscipy.neighbours import neighbour_list
    from scipy.special import erfc

    pos = np.asarray(positions, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64)
    q = np.asarray(charges, dtype=np.float64)
    n = len(pos)
    if q.shape != (n,):
        raise CalculatorError("need one charge per atom", field="charges", value=q.shape)
    volume = abs(float(np.linalg.det(cell)))
    s = math.sqrt(-math.log(tol))
    eta = s / r_cut
    k_max = 2.0 * eta * s
    kc = COULOMB_EV_A

    # real space (full list, halved)
    i, j, D = neighbour_list("ijD", positions=pos, cell=cell, pbc=[True] * 3, cutoff=r_cut)
    r = np.linalg.norm(D, axis=1)
    qq = q[i] * q[j]
    e_real = 0.5 * kc * float(np.sum(qq * erfc(eta * r) / r))
    de_dr = 0.5 * kc * qq * (-erfc(eta * r) / r**2
                             - 2 * eta / math.sqrt(math.pi) * np.exp(-(eta * r) ** 2) / r)
    g = (de_dr / r)[:, None] * D
    forces = np.zeros((n, 3))
    for k in range(3):
        forces[:, k] = (np.bincount(i, weights=g[:, k], minlength=n)
                        - np.bincount(j, weights=g[:, k], minlength=n))
    virial = D.T @ g

    # reciprocal space, full sphere of k != 0
    B = 2 * np.pi * np.linalg.inv(cell).T  # rows: reciprocal vectors
    nmax = [int(math.ceil(k_max / np.linalg.norm(B[a]))) + 1 for a in range(3)]
    grid = np.stack(np.meshgrid(*[np.arange(-m, m + 1) for m in nmax], indexing="ij"),
                    axis=-1).reshape(-1, 3)
    kvec = grid @ B
    k2 = np.einsum("ij,ij->i", kvec, kvec)
    sel = (k2 > 0) & (k2 <= k_max**2)
    kvec, k2 = kvec[sel], k2[sel]
    w = np.exp(-k2 / (4 * eta**2)) / k2
    e_recip = 0.0
    rec_virial = np.zeros((3, 3))
    for start in range(0, len(k2), 2048):
        kv = kvec[start:start + 2048]
        ww = w[start:start + 2048]
        kk = k2[start:start + 2048]
        phase = pos @ kv.T  # (N, nk)
        c, sn = np.cos(phase), np.sin(phase)
        s_re = q @ c
        s_im = q @ sn
        s2 = s_re**2 + s_im**2
        e_recip += kc * 2 * np.pi / volume * float(np.sum(ww * s2))
        # F_i = k 4pi/V q_i sum_k w k Im[e^{ik r_i} S*]
        im = sn * s_re - c * s_im  # Im[e^{ik r_i} conj(S)]
        forces += kc * 4 * np.pi / volume * q[:, None] * ((im * ww) @ kv)
        fac = ww * s2 * 2 * (1 / (4 * eta**2) + 1 / kk)
        rec_virial += kc * 2 * np.pi / volume * (
            -np.sum(ww * s2) * np.eye(3) + (kv * fac[:, None]).T @ kv)
    e_self = -kc * eta / math.sqrt(math.pi) * float(np.sum(q**2))
    qtot = float(q.sum())
    e_bg = -kc * math.pi * qtot**2 / (2 * volume * eta**2)
    stress = (virial + rec_virial) / volume - e_bg / volume * np.eye(3)  # dE_bg/deps = -E_bg
    energy = e_real + e_recip + e_self + e_bg
    return EwaldResult(energy=energy, forces=forces, stress=0.5 * (stress + stress.T), eta=eta,
                       r_cut=r_cut, k_max=k_max, n_kvectors=int(len(k2)))


def ewald_for_atoms(atoms, charges: np.ndarray, **kwargs) -> EwaldResult:
    """:func:`ewald_coulomb` for an :class:`ase.Atoms` with per-atom ``charges`` (e)."""
    return ewald_coulomb(atoms.positions, np.asarray(atoms.cell), charges, **kwargs)
