"""The fit's own short MD runs (:func:`ionic_md_snapshots`, Langevin NVT with the
ionic potential being fitted, stopped at the first collapse) and the check that rejects
frames with molecular anion–anion bonds (:func:`anion_bonds`).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from viglas.chemistry import CONTACT_A
from viglas.potentials.parameters import IonicParameters, pair_key

__all__ = ["anion_bonds", "ionic_md_snapshots"]


def anion_bonds(atoms: Atoms, limits: dict[str, float] | None = None) -> int:
    """Number of anion–anion pairs closer than a bond limit (Å; default Cl–Cl 2.4,
    Cl–O 2.0, O–O 1.8): molecular Cl2 / O2 / ClO that an ionic model cannot describe."""
    from matscipy.neighbours import neighbour_list

    lim = {"Cl-Cl": 2.4, "Cl-O": 2.0, "O-O": 1.8}
    lim.update(limits or {})
    i, j, d = neighbour_list("ijd", atoms, max(lim.values()))
    sym = np.array(atoms.get_chemical_symbols())
    n = 0
    for key, r in lim.items():
        a, b = key.split("-")
        m = (((sym[i] == a) & (sym[j] == b)) | ((sym[i] == b) & (sym[j] == a))) & (d < r)
        n += int(m.sum())
    return n // 2


def ionic_md_snapshots(start: Atoms, params: IonicParameters, *, temperature_K: float,
                       steps: int, n_snapshots: int, timestep_fs: float = 2.0,
                       seed: int = 0, min_contact_fraction: float = 0.7,
                       ) -> list[Atoms]:
    """Snapshots of Langevin NVT MD with the ionic potential ``params`` from ``start``.

    ``steps`` steps of ``timestep_fs`` fs at ``temperature_K``; ``n_snapshots`` frames
    evenly spaced over the second half. The run stops early on a non-finite force or
    when two atoms come closer than ``min_contact_fraction`` × their contact distance;
    such frames are not returned (the frames before are, they are the informative ones).
    """
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from viglas.potentials.ionic import IonicPotential

    atoms = start.copy()
    atoms.info = {}
    atoms.calc = IonicPotential(params)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K,
                                 rng=np.random.default_rng(seed))
    dyn = Langevin(atoms, timestep=timestep_fs * units.fs, temperature_K=temperature_K,
                   friction=0.01 / units.fs, fixcm=False,  # COM drift: harmless here
                   rng=np.random.default_rng(seed + 1))
    every = max(1, (steps // 2) // max(1, n_snapshots))
    out: list[Atoms] = []
    sym = np.array(atoms.get_chemical_symbols())
    from matscipy.neighbours import neighbour_list

    def ok(a: Atoms) -> bool:
        if not np.all(np.isfinite(a.positions)):
            return False
        i, j, d = neighbour_list("ijd", a, 2.5)
        lim = np.array([min_contact_fraction * CONTACT_A.get(pair_key(x, y), 2.6)
                        for x, y in zip(sym[i], sym[j])]) if len(i) else np.zeros(0)
        return bool(np.all(d >= lim))

    done = 0
    while done < steps:
        n = min(every, steps - done)
        dyn.run(n)
        done += n
        if not np.all(np.isfinite(atoms.get_forces())) or not ok(atoms):
            break
        if done > steps // 2 and len(out) < n_snapshots:
            snap = atoms.copy()
            snap.calc = None
            out.append(snap)
    return out
