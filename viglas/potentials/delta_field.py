"""Field-squared term of the ionic+delta correction (:mod:`viglas.potentials.delta`).

One coefficient per element s multiplies

    U_s = sum_{i of element s} |E_i|^2,   E_i = sum_j q_j phi(r_ij) (x_i - x_j)

the squared field of fixed point charges q_j (formal charges, :data:`FORMAL_CHARGES`) at
atom i from its neighbours within ``rc``, with

    phi(r) = f_TT(b r) (1 - (r/rc)^2)^2 / r^3

``f_TT`` the Tang–Toennies damping of order 4 (1 - e^{-x} sum_{k<=4} x^k/k!) and a taper
that takes phi and phi' to zero at rc. With a negative coefficient, -alpha/2 |E_i|^2 is
the induction energy of a polarisable ion in the field of its neighbours (first order:
the induced dipoles do not polarise each other). The coefficients are fitted like every
other column of the correction; a positive one is simply a many-body term.

Why this term (docs/dft.md, session 10): ``scripts/induction_probe.py`` added these
columns to the exact design of the shipped fit and lifted held-out force R² most where
the fit is weakest (In), and a 5 Å cutoff did as well as 10 Å, so the term is local and
shares the correction's neighbour list.

Forces and stress are exact derivatives (tests/test_delta.py). Units: charges in e,
distances in Å, so |E|^2 is in e^2/Å^4 and the coefficient in eV Å^4/e^2.
"""

from __future__ import annotations

import math

import numpy as np

from viglas.jit import lazy_kernel

#: charges of the field (e): formal oxidation states of the species viglas models
FORMAL_CHARGES = {"Li": 1.0, "Na": 1.0, "K": 1.0, "Al": 3.0, "Ga": 3.0, "In": 3.0,
                  "B": 3.0, "Cl": -1.0, "O": -2.0, "F": -1.0, "Br": -1.0, "I": -1.0,
                  "S": -2.0}


def charges_of(species: list[str]) -> np.ndarray:
    """Formal charge of each species (type order); unknown elements are refused."""
    from viglas.errors import FitError

    missing = [s for s in species if s not in FORMAL_CHARGES]
    if missing:
        raise FitError("no formal charge for the field term", field="species",
                       value=missing, allowed=", ".join(FORMAL_CHARGES))
    return np.array([FORMAL_CHARGES[s] for s in species], float)


def phi(r: np.ndarray | float, rc: float, b: float):
    """phi(r) and phi'(r) (numpy; the kernel inlines the same formula)."""
    r = np.asarray(r, float)
    x = b * r
    ex = np.exp(-x)
    f = 1.0 - ex * (1.0 + x + x * x / 2.0 + x ** 3 / 6.0 + x ** 4 / 24.0)
    df = b * ex * x ** 4 / 24.0
    y = r / rc
    sw = (1.0 - y * y) ** 2
    dsw = -4.0 * y * (1.0 - y * y) / rc
    p = f * sw / r ** 3
    dp = (df * sw + f * dsw) / r ** 3 - 3.0 * p / r
    inside = r < rc
    return np.where(inside, p, 0.0), np.where(inside, dp, 0.0)


@lazy_kernel(remember_missing=False)
def _kernel(numba):
    from viglas.potentials.delta_ace import kernel_helpers, require_kernel

    _, _, _, pair_add, pair_vector = require_kernel(kernel_helpers())

    @numba.njit(cache=True, nogil=True, inline="always")
    def radial(r, rc, b):
        x = b * r
        ex = math.exp(-x)
        x2 = x * x
        f = 1.0 - ex * (1.0 + x + x2 / 2.0 + x2 * x / 6.0 + x2 * x2 / 24.0)
        df = b * ex * x2 * x2 / 24.0
        y = r / rc
        sw = (1.0 - y * y) * (1.0 - y * y)
        dsw = -4.0 * y * (1.0 - y * y) / rc
        r3 = r * r * r
        p = f * sw / r3
        dp = (df * sw + f * dsw) / r3 - 3.0 * p / r
        return p, dp

    @numba.njit(cache=True, nogil=True, inline="always")
    def side(s, q, ph, dr, d0, d1, d2, e0, e1, e2):
        """dU/dd of U = |E|^2 at one end of the pair: s = -1 for the atom at the start
        of d (x_i, field along x_i - x_j = -d), +1 for the atom at its end; q is the
        charge at the other end, (e0, e1, e2) the field at this one."""
        de = d0 * e0 + d1 * e1 + d2 * e2
        c = 2.0 * s * q
        return c * (ph * e0 + dr * d0 * de), c * (ph * e1 + dr * d1 * de), \
            c * (ph * e2 + dr * d2 * de)

    @numba.njit(cache=True, nogil=True)
    def kernel(pos, cell, ii, jj, SS, types, q, rc, b, off, coef, fit, efeat, ffeat, vfeat,
               forces, virial):
        """fit=True: add design rows (columns off + type); fit=False: add forces and
        virial with ``coef`` and return the energy. Half list (ii, jj, SS), d = x_j - x_i."""
        n = pos.shape[0]
        npair = ii.shape[0]
        E = np.zeros((n, 3))
        pd = np.zeros((npair, 6))  # d, r, phi, phi'
        rc2 = rc * rc
        for p in range(npair):
            i = ii[p]
            j = jj[p]
            d0, d1, d2 = pair_vector(pos, cell, SS, p, i, j)
            r2 = d0 * d0 + d1 * d1 + d2 * d2
            if r2 >= rc2:
                pd[p, 3] = -1.0
                continue
            r = math.sqrt(r2)
            ph, dph = radial(r, rc, b)
            pd[p, 0] = d0
            pd[p, 1] = d1
            pd[p, 2] = d2
            pd[p, 3] = r
            pd[p, 4] = ph
            pd[p, 5] = dph
            qi = q[types[i]]
            qj = q[types[j]]
            # field at i from j along x_i - x_j = -d; at j from i along +d
            E[i, 0] -= qj * ph * d0
            E[i, 1] -= qj * ph * d1
            E[i, 2] -= qj * ph * d2
            E[j, 0] += qi * ph * d0
            E[j, 1] += qi * ph * d1
            E[j, 2] += qi * ph * d2
        energy = 0.0
        for a in range(n):
            u = E[a, 0] * E[a, 0] + E[a, 1] * E[a, 1] + E[a, 2] * E[a, 2]
            col = off + types[a]
            if fit:
                efeat[col] += u
            else:
                energy += coef[col] * u
        for p in range(npair):
            r = pd[p, 3]
            if r < 0.0:
                continue
            i = ii[p]
            j = jj[p]
            d0 = pd[p, 0]
            d1 = pd[p, 1]
            d2 = pd[p, 2]
            ph = pd[p, 4]
            dr = pd[p, 5] / r
            # U_i (field at i from q_j) and U_j (field at j from q_i)
            g0, g1, g2 = side(-1.0, q[types[j]], ph, dr, d0, d1, d2, E[i, 0], E[i, 1], E[i, 2])
            pair_add(fit, off + types[i], coef, i, j, g0, g1, g2, d0, d1, d2, ffeat, vfeat,
                     forces, virial)
            g0, g1, g2 = side(1.0, q[types[i]], ph, dr, d0, d1, d2, E[j, 0], E[j, 1], E[j, 2])
            pair_add(fit, off + types[j], coef, i, j, g0, g1, g2, d0, d1, d2, ffeat, vfeat,
                     forces, virial)
        return energy

    return kernel


def kernel():
    """The compiled kernel (numba is required, as for the rest of the correction)."""
    from viglas.potentials.delta_ace import require_kernel

    return require_kernel(_kernel())
