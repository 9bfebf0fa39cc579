"""Crystal prototypes of the parent salts, shipped as CIF package data.

* ``LiAlCl4``: monoclinic P2₁/c (No. 14), Z = 4, 1.974 g/cm³ — Mairesse, Barbier,
  Vignacourt, Cryst. Struct. Commun. 6, 15 (1977); COD 1004036.
* ``NaAlCl4``: orthorhombic P2₁2₁2₁ (No. 19), Z = 4, 1.887 g/cm³ — Mairesse, Barbier,
  Wignacourt, Acta Cryst. B 35, 1573 (1979); COD 1004043.

Both consist of isolated AlCl4 tetrahedra (Al–Cl 2.12–2.14 Å) and alkali ions.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from importlib import resources

from ase import Atoms

from viglas.errors import StructureError

#: Prototype name per alkali.
PROTOTYPES: dict[str, str] = {"Li": "LiAlCl4", "Na": "NaAlCl4"}
#: Formula units per conventional cell of each prototype.
PROTOTYPE_Z = 4


def prototype_path(name: str) -> str:
    """Path of the shipped CIF of prototype ``name`` ("LiAlCl4" or "NaAlCl4")."""
    if name not in PROTOTYPES.values():
        raise StructureError("unknown prototype", field="prototype", value=name,
                             allowed=", ".join(PROTOTYPES.values()))
    return str(resources.files("viglas.structures") / "data" / f"{name}.cif")


@lru_cache(maxsize=None)
def _load(name: str) -> Atoms:
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        struct = Structure.from_file(prototype_path(name))
    atoms = AseAtomsAdaptor.get_atoms(struct)
    atoms.info = {"prototype": name}
    for key in list(atoms.arrays):
        if key not in ("numbers", "positions"):
            del atoms.arrays[key]
    return atoms


def load_prototype(name_or_alkali: str) -> Atoms:
    """The conventional cell (24 atoms, Z = 4) of a prototype as ASE Atoms.

    Args:
        name_or_alkali: "LiAlCl4", "NaAlCl4", or the alkali symbol "Li" / "Na".
    """
    name = PROTOTYPES.get(name_or_alkali, name_or_alkali)
    return _load(name).copy()
