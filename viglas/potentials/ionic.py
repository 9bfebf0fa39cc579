"""The classical ionic potential as an ASE calculator, and its LAMMPS bridge.

Energy (eV) of a periodic cell::

    E = sum_{i<j, r<r_sr} [A exp(-r/rho) - C/r^6 + B/r^12 - (same at r_sr)]     short range
      + sum_{i<j, r<r_c} k q_i q_j [erfc(a r)/r - erfc(a r_c)/r_c
                                     + (erfc(a r_c)/r_c^2 + 2a/sqrt(pi) exp(-a^2 r_c^2)/r_c)(r - r_c)]
      - k sum_i q_i^2 [erfc(a r_c)/(2 r_c) + a/sqrt(pi)]                        DSF self term
      + sum_M sum_{X<Y} k_M (cos theta_XMY - cos0_M)^2
            exp(gamma_M/(r_MX - rc_M)) exp(gamma_M/(r_MY - rc_M))              three body

with ``k = COULOMB_EV_A`` (e^2/4 pi eps0 in eV Å), ``q_i = charge_scale * formal``,
damped-shifted-force Coulomb of Fennell & Gezelter, J. Chem. Phys. 124, 234104 (2006)
(the same form as LAMMPS ``coul/dsf``). The optional three-body term (the angle part of
Stillinger-Weber, LAMMPS ``pair_style sw``) acts on angles X-M-Y at a network former M
with r_MX, r_MY < rc_M (:mod:`viglas.potentials.parameters`). Forces and the stress
tensor are the exact derivatives of this energy (tested against finite differences).

Files (this module re-exports their public names, so old imports keep working):

* :mod:`viglas.potentials.ionic_kernels` — the numba kernels, compiled on first use and
  cached on disk (None without numba): the fused pair loop
  (:func:`~viglas.potentials.ionic_kernels.numba_pair_kernel`), the three-body loop
  (:func:`three_body_kernel`; :func:`three_body_numpy` is the numpy version) and a
  cell-list half neighbour list (:func:`half_neighbour_list`; matscipy's
  ``neighbour_list`` without numba);
* this module: :class:`IonicPotential` — the ASE calculator (``backend`` "numba" or
  vectorised "numpy", same numbers to ~1e-12). The half list (i < j) built at
  ``cutoff + skin`` is reused until an atom (measured in the fractional frame, so cell
  changes in NPT are accounted for) has moved far enough that a pair outside the list
  could have come inside the cutoff; pairs are summed in a canonical order, so results
  do not depend on the rebuild history;
* :mod:`viglas.potentials.ionic_lammps` — :func:`lammps_pair_commands`,
  :func:`lammps_sw_file_lines`, :class:`LammpsIonic`: the same potential in LAMMPS
  (``born/coul/dsf`` + ``lj/cut`` + ``sw``) for cross-checks and benchmarks.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from viglas.errors import CalculatorError
from viglas.potentials.ionic_kernels import (canonical_pairs, half_neighbour_list,
                                             numba_pair_kernel, numba_three_body_kernel,
                                             pair_vectors, three_body_kernel,
                                             three_body_numpy, three_body_tables)
from viglas.potentials.ionic_lammps import (SW_INERT_CUTOFF, LammpsIonic,
                                            lammps_pair_commands, lammps_sw_file_lines)
from viglas.potentials.parameters import IonicParameters, load_parameters
from viglas.units import COULOMB_EV_A

__all__ = ["IonicPotential", "half_neighbour_list", "three_body_kernel", "three_body_tables",
           "three_body_numpy", "lammps_pair_commands", "lammps_sw_file_lines", "LammpsIonic",
           "SW_INERT_CUTOFF"]


def _resolve(parameters: None | str | Path | IonicParameters | dict) -> IonicParameters:
    if isinstance(parameters, IonicParameters):
        return parameters
    if isinstance(parameters, dict):
        from viglas.potentials.parameters import parameters_from_dict

        return parameters_from_dict(parameters)
    return load_parameters(parameters)


class IonicPotential(Calculator):
    """Buckingham + B/r^12 wall + damped-shifted-force Coulomb, as an ASE calculator.

    Parameters
    ----------
    parameters : an :class:`IonicParameters`, a dict in the YAML layout, a path to a
        ``viglas-ionic/1`` YAML file, ``"trial"`` (shipped trial set), ``"chgnet-ionic"`` or None
        (the shipped plain set fitted to CHGNet, ``data/chgnet_ionic.yaml``). The default
        potential of viglas (``"default"``) is the ionic+delta set ``dft-delta``:
        :func:`viglas.potentials.delta.make_potential` builds it.
    skin : Verlet skin in Å added to the largest cutoff when the neighbour list is
        built; larger = fewer rebuilds, more pairs per call.
    backend : ``"auto"`` (numba fused loop if numba is installed, else numpy),
        ``"numba"`` or ``"numpy"`` (vectorised arrays; same numbers to ~1e-12).

    Results: ``energy``/``free_energy`` (eV), ``forces`` (eV/Å), ``stress`` (eV/Å^3,
    ASE sign convention: negative under compression, Voigt order xx yy zz yz xz xy).
    After each call ``energy_terms`` holds the short-range, pair-Coulomb and self
    energies (eV), ``min_distance`` the shortest interatomic distance (Å, among pairs
    within the cutoff) and ``n_rebuilds`` counts neighbour-list builds.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    nolabel = True

    def __init__(self, parameters: None | str | Path | IonicParameters | dict = None, *,
                 skin: float = 1.0, backend: str = "auto", **kwargs):
        super().__init__(**kwargs)
        if backend not in ("auto", "numba", "numpy"):
            raise CalculatorError("unknown backend", field="backend", value=backend,
                                  allowed="auto, numba, numpy")
        self._kernel = None if backend == "numpy" else numba_pair_kernel()
        if backend == "numba" and self._kernel is None:
            from viglas.errors import MissingDependencyError

            raise MissingDependencyError("backend 'numba' needs numba", field="backend",
                                         value=backend, hint="pip install numba")
        self.backend = "numba" if self._kernel is not None else "numpy"
        self.params: IonicParameters = _resolve(parameters)
        self._kernel3 = (numba_three_body_kernel() if self._kernel is not None
                         and self.params.three_body else None)
        if skin < 0:
            raise CalculatorError("skin must be >= 0", field="skin", value=skin,
                                  allowed="a distance >= 0 in Angstrom")
        self.skin = float(skin)
        p = self.params
        self.alpha = float(p.coulomb.alpha)
        self.rc = float(p.coulomb.cutoff)
        self.rsr = float(p.short_range_cutoff)
        self.r_list = max(self.rc, self.rsr) + self.skin
        # the angle term only needs the short bonds: a sub-list of the pair list, built
        # with it at the largest angle cutoff + the same skin
        self.rc3 = max((t.cutoff for t in p.three_body.values()), default=0.0)
        self.r3_list = self.rc3 + self.skin
        a, rc = self.alpha, self.rc
        from scipy.special import erfc

        self._erfc = erfc
        self._erfc_c = float(erfc(a * rc))
        self._e_shift = self._erfc_c / rc
        self._f_shift = self._erfc_c / rc**2 + 2 * a / math.sqrt(math.pi) * math.exp(-(a * rc) ** 2) / rc
        self._self_coef = self._erfc_c / (2 * rc) + a / math.sqrt(math.pi)
        self._nl: dict | None = None
        self._numbers: np.ndarray | None = None
        self.energy_terms: dict[str, float] = {}
        self.min_distance: float = float("inf")
        self.n_rebuilds = 0

    # ------------------------------------------------------------ set-up per system
    def _setup_types(self, atoms) -> None:
        symbols = atoms.get_chemical_symbols()
        self.params.check_elements(set(symbols))
        elements = sorted(set(symbols))
        index = {s: k for k, s in enumerate(elements)}
        self._types = np.array([index[s] for s in symbols], dtype=np.intp)
        nt = len(elements)
        self._ntypes = nt
        q = np.array([self.params.charge(s) for s in elements])
        self._q_atoms = q[self._types]
        # type-pair tables (symmetric); has_sr marks pairs with a short-range term
        A = np.zeros((nt, nt))
        inv_rho = np.zeros((nt, nt))
        C = np.zeros((nt, nt))
        B = np.zeros((nt, nt))
        shift = np.zeros((nt, nt))
        has = np.zeros((nt, nt), dtype=bool)
        for x, sx in enumerate(elements):
            for y, sy in enumerate(elements):
                pp = self.params.pair(sx, sy)
                if pp is None:
                    continue
                has[x, y] = True
                A[x, y], inv_rho[x, y], C[x, y], B[x, y] = pp.A, 1.0 / pp.rho, pp.C, pp.B
                shift[x, y] = pp.energy(self.rsr)
        self._tab = {"A": A.ravel(), "inv_rho": inv_rho.ravel(), "C": C.ravel(),
                     "B": B.ravel(), "shift": shift.ravel(), "has": has.ravel(),
                     "qq": (COULOMB_EV_A * np.outer(q, q)).ravel()}
        self._e_self = -COULOMB_EV_A * self._self_coef * float(np.sum(self._q_atoms**2))
        self._tab3 = three_body_tables(self.params.three_body, elements)
        self._has3 = bool(self._tab3["nbr"].any())
        nbr = self._tab3["nbr"].reshape(nt, nt)
        self._tab3["bond_tp"] = (nbr | nbr.T).ravel()  # type pairs the angle term can bond
        self._numbers = atoms.numbers.copy()
        self._nl = None

    def _build_list(self, pos: np.ndarray, cell: np.ndarray, atoms) -> None:
        if self._kernel is not None:
            i, j, S = half_neighbour_list(pos, cell, self.r_list)
        else:
            from matscipy.neighbours import neighbour_list

            i, j, S = neighbour_list("ijS", positions=pos, cell=cell, pbc=atoms.pbc,
                                     cutoff=self.r_list)
            # half list: i < j, and for periodic self-images (i == j) one of S / -S
            lexpos = (S[:, 0] > 0) | ((S[:, 0] == 0) & ((S[:, 1] > 0) | ((S[:, 1] == 0) & (S[:, 2] > 0))))
            keep = (i < j) | ((i == j) & lexpos)
            i, j, S = i[keep], j[keep], S[keep]
            # canonical pair order (i, j, S): the pairs inside the cutoff are then summed
            # in the same order whenever the list was built, so results do not depend on
            # the rebuild history (a resumed MD run reproduces an uninterrupted one exactly)
            i, j, S = canonical_pairs(i, j, S)
        S = S.astype(np.float64)
        tp = self._types[i] * self._ntypes + self._types[j]
        t = self._tab
        sr = np.nonzero(t["has"][tp])[0]
        self._nl = {
            "i": i, "j": j, "S": S, "qq": t["qq"][tp], "tp": tp.astype(np.int64),
            "sr": sr, "A": t["A"][tp[sr]], "inv_rho": t["inv_rho"][tp[sr]],
            "C": t["C"][tp[sr]], "B": t["B"][tp[sr]], "shift": t["shift"][tp[sr]],
            "pos0": pos.copy(), "cell0": cell.copy(), "icell0": np.linalg.inv(cell),
        }
        if self._has3:
            # bonds the angle term can see until the next rebuild (list order kept, so
            # the kernels sum exactly as over the whole list)
            c = np.nonzero(self._tab3["bond_tp"][tp])[0]
            D = pair_vectors(pos, cell, np.take(i, c), np.take(j, c), np.take(S, c, axis=0))
            c = c[np.einsum("ij,ij->i", D, D) < self.r3_list**2]
            self._nl.update(i3=i[c], j3=j[c], S3=np.ascontiguousarray(S[c]))
        self.n_rebuilds += 1

    def _list_valid(self, pos: np.ndarray, cell: np.ndarray) -> bool:
        nl = self._nl
        if nl is None or pos.shape != nl["pos0"].shape:
            return False
        if np.array_equal(cell, nl["cell0"]):
            disp = pos - nl["pos0"]
            sigma_min = 1.0
        else:
            # positions mapped into the build-time cell through fractional coordinates
            disp = (pos @ np.linalg.inv(cell)) @ nl["cell0"] - nl["pos0"]
            sigma_min = float(np.linalg.svd(nl["icell0"] @ cell, compute_uv=False).min())
        dmax = math.sqrt(float(np.max(np.einsum("ij,ij->i", disp, disp)))) if len(disp) else 0.0
        return ((self.r_list - 2.0 * dmax) * sigma_min >= max(self.rc, self.rsr)
                and (self.r3_list - 2.0 * dmax) * sigma_min >= self.rc3)

    def reset_neighbor_list(self) -> None:
        """Force a neighbour-list rebuild at the next call."""
        self._nl = None

    # ASE's generic state check and the two Atoms copies per call in
    # Calculator.get_property/calculate cost ~15 % of an MD step at 500 atoms; this
    # calculator keeps a snapshot of the four arrays it depends on instead.
    def check_state(self, atoms, tol: float = 1e-15) -> list[str]:
        """Which inputs (positions, numbers, cell, pbc) changed since the last call."""
        snap = getattr(self, "_snap", None)
        if snap is None:
            return list(all_changes)
        pos, numbers, cell, pbc = snap  # bytes: a memcmp is cheaper than array_equal
        changes = []
        if pos != atoms.positions.tobytes():
            changes.append("positions")
        if numbers != atoms.numbers.tobytes():
            changes.append("numbers")
        if cell != atoms.cell.array.tobytes():
            changes.append("cell")
        if pbc != np.asarray(atoms.pbc, dtype=bool).tobytes():
            changes.append("pbc")
        return changes

    def get_property(self, name, atoms=None, allow_calculation=True):
        from ase.calculators.calculator import PropertyNotImplementedError

        if name not in self.implemented_properties:
            raise PropertyNotImplementedError(f"{name} property not implemented")
        if atoms is None:
            atoms = self.atoms
            changes: list[str] = []
        else:
            changes = self.check_state(atoms)
            if changes:
                self.results = {}
        if name not in self.results:
            if not allow_calculation:
                return None
            if atoms is None:
                raise CalculatorError("no atoms to calculate", field="atoms", value=None)
            self.calculate(atoms, [name], changes)
        result = self.results[name]
        return result.copy() if isinstance(result, np.ndarray) else result

    def reset(self) -> None:
        super().reset()
        self._snap = None

    # ------------------------------------------------------------------ physics
    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if atoms is None:
            atoms = self.atoms
        self.atoms = atoms  # reference; the snapshot below is what check_state compares
        self._snap = (atoms.positions.tobytes(), atoms.numbers.tobytes(),
                      atoms.cell.array.tobytes(), np.asarray(atoms.pbc, dtype=bool).tobytes())
        if not np.all(atoms.pbc):
            raise CalculatorError("the ionic potential needs a 3D periodic cell",
                                  field="pbc", value=tuple(bool(x) for x in atoms.pbc),
                                  allowed="(True, True, True)")
        if self._numbers is None or not np.array_equal(self._numbers, atoms.numbers):
            self._setup_types(atoms)
        pos = atoms.positions
        cell = np.asarray(atoms.cell, dtype=np.float64)
        volume = abs(float(np.linalg.det(cell)))
        if volume < 1e-9:
            raise CalculatorError("cell has zero volume", field="cell", value=cell.tolist())
        if not self._list_valid(pos, cell):
            self._build_list(pos, cell, atoms)
        nl = self._nl
        n = len(atoms)
        if self._kernel is not None:
            t = self._tab
            forces = np.empty((n, 3))
            virial = np.empty((3, 3))
            e_sr, e_coul, rmin = self._kernel(
                np.ascontiguousarray(pos, dtype=np.float64), np.ascontiguousarray(cell),
                nl["i"], nl["j"], nl["S"], nl["tp"], t["A"], t["inv_rho"], t["C"], t["B"],
                t["shift"], t["has"], t["qq"], self.alpha, self.rc, self.rsr,
                self._e_shift, self._f_shift, forces, virial)
            if rmin <= 0.0:
                raise CalculatorError("two atoms sit on the same point", field="positions",
                                      value=rmin)
            self.min_distance = rmin
            e3 = 0.0
            if self._has3:
                t3 = self._tab3
                e3 = self._kernel3(np.ascontiguousarray(pos, dtype=np.float64),
                                   np.ascontiguousarray(cell), nl["i3"], nl["j3"], nl["S3"],
                                   self._types, t3["nbr"], t3["k"], t3["cos0"], t3["gamma"],
                                   t3["rc"], forces, virial)
            self._finish(e_sr, e_coul, forces, virial, volume, e3)
            return
        i, j = nl["i"], nl["j"]
        S = nl["S"]
        D = pair_vectors(pos, cell, i, j, S)
        r2 = np.einsum("ij,ij->i", D, D)
        r = np.sqrt(r2)
        if len(r) and not np.all(r > 0):
            raise CalculatorError("two atoms sit on the same point", field="positions",
                                  value=float(r.min()))
        self.min_distance = float(r.min()) if len(r) else float("inf")
        inv_r = 1.0 / r

        # damped shifted force Coulomb
        a = self.alpha
        in_c = r < self.rc
        erfc_ar = self._erfc(a * r)
        qq = np.where(in_c, nl["qq"], 0.0)
        e_c_pair = qq * (erfc_ar * inv_r - self._e_shift + self._f_shift * (r - self.rc))
        de_dr = qq * (-erfc_ar * inv_r * inv_r
                      - (2 * a / math.sqrt(math.pi)) * np.exp(-(a * a) * r2) * inv_r
                      + self._f_shift)
        e_coul = float(e_c_pair.sum())

        # short range: Buckingham + wall, energy shifted at r_sr
        e_sr = 0.0
        sr = nl["sr"]
        if len(sr):
            rs = r[sr]
            irs = inv_r[sr]
            in_sr = rs < self.rsr
            expo = nl["A"] * np.exp(-rs * nl["inv_rho"])
            ir6 = irs**6
            c6 = nl["C"] * ir6
            b12 = nl["B"] * ir6 * ir6
            e_pair = np.where(in_sr, expo - c6 + b12 - nl["shift"], 0.0)
            d_pair = np.where(in_sr, -expo * nl["inv_rho"] + (6.0 * c6 - 12.0 * b12) * irs, 0.0)
            e_sr = float(e_pair.sum())
            de_dr[sr] += d_pair

        # dE/dD_ij (vector along D = r_j - r_i): pushes j by -g, i by +g
        g = (de_dr * inv_r)[:, None] * D
        forces = np.empty((n, 3))
        for k in range(3):
            forces[:, k] = (np.bincount(i, weights=g[:, k], minlength=n)
                            - np.bincount(j, weights=g[:, k], minlength=n))
        virial = np.einsum("pi,pj->ij", D, g)  # sum_pairs D (x) dE/dD
        e3 = 0.0
        if self._has3:
            t3 = self._tab3
            e3 = three_body_numpy(np.asarray(pos, dtype=np.float64), cell, nl["i3"],
                                  nl["j3"], nl["S3"],
                                  self._types, t3["nbr"], t3["k"], t3["cos0"], t3["gamma"],
                                  t3["rc"], forces, virial)
        self._finish(e_sr, e_coul, forces, virial, volume, e3)

    def _finish(self, e_sr: float, e_coul: float, forces: np.ndarray, virial: np.ndarray,
                volume: float, e3: float = 0.0) -> None:
        sigma = virial / volume
        stress = np.array([sigma[0, 0], sigma[1, 1], sigma[2, 2],
                           0.5 * (sigma[1, 2] + sigma[2, 1]),
                           0.5 * (sigma[0, 2] + sigma[2, 0]),
                           0.5 * (sigma[0, 1] + sigma[1, 0])])
        energy = e_sr + e_coul + self._e_self + e3
        self.energy_terms = {"short_range": e_sr, "coulomb_pairs": e_coul,
                             "coulomb_self": self._e_self, "three_body": e3}
        self.results = {"energy": energy, "free_energy": energy, "forces": forces,
                        "stress": stress}
