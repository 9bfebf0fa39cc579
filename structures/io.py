"""Structure files: CIF, extended XYZ and VASP POSCAR, chosen by the file name.

* ``*.cif`` — written with pymatgen's ``CifWriter`` (P1, every site fully occupied, so
  pymatgen reads back the exact formula); build metadata go into ``#`` comment lines.
* ``*.xyz`` / ``*.extxyz`` — ASE extended XYZ (cell, pbc and ``atoms.info`` kept).
* ``POSCAR``, ``CONTCAR``, ``*.vasp``, ``*.poscar`` — VASP 5 format, direct coordinates.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ase import Atoms

from viglas.errors import StructureError

_ALLOWED = "a file name ending in .cif, .xyz, .extxyz, .vasp or .poscar, or named POSCAR/CONTCAR"


def structure_format(path: str | os.PathLike) -> str:
    """File format ("cif", "extxyz" or "vasp") from the file name; StructureError otherwise."""
    name = Path(path).name
    low = name.lower()
    if low.endswith(".cif"):
        return "cif"
    if low.endswith((".xyz", ".extxyz")):
        return "extxyz"
    if low.endswith((".vasp", ".poscar")) or low.startswith(("poscar", "contcar")):
        return "vasp"
    raise StructureError("unknown structure file type", field="output", value=str(path),
                         allowed=_ALLOWED)


def check_output_path(path: str | os.PathLike) -> Path:
    """Check that ``path`` has a known suffix and its folder exists and is writable."""
    p = Path(path)
    structure_format(p)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise StructureError("output path is a directory", field="output", value=str(path),
                             allowed="a file path")
    if not parent.is_dir():
        raise StructureError("output folder does not exist", field="output", value=str(path),
                             allowed="a path in an existing, writable folder")
    writable = os.access(parent, os.W_OK) and (not p.exists() or os.access(p, os.W_OK))
    if writable:  # the permission bits say yes; root and read-only mounts need a real try
        from viglas.errors import OutputError, check_writable_dir

        try:
            check_writable_dir(parent, field="output", create=False)
            if p.exists():
                with open(p, "ab"):
                    pass
        except (OutputError, OSError):
            writable = False
    if not writable:
        raise StructureError("output path is not writable", field="output", value=str(path),
                             allowed="a path in an existing, writable folder")
    return p


def write_structure(atoms: Atoms, path: str | os.PathLike) -> Path:
    """Write ``atoms`` to ``path``; the format follows the file name (see module doc).

    Raises StructureError for an unknown suffix or an unwritable path.
    """
    p = check_output_path(path)
    fmt = structure_format(p)
    try:
        if fmt == "cif":
            from pymatgen.io.ase import AseAtomsAdaptor
            from pymatgen.io.cif import CifWriter

            plain = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
            struct = AseAtomsAdaptor.get_structure(plain)
            header = "".join(f"# {k}: {v}\n" for k, v in atoms.info.items()
                             if isinstance(v, (str, int, float)))
            text = str(CifWriter(struct))
            p.write_text(f"# written by viglas\n{header}{text}")
        elif fmt == "extxyz":
            from ase.io import write

            info = {k: v for k, v in atoms.info.items() if isinstance(v, (str, int, float, bool))}
            out = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell,
                        pbc=atoms.pbc, info=info)
            write(p, out, format="extxyz")
        else:
            from ase.io import write

            write(p, atoms, format="vasp", direct=True, sort=False)
    except OSError as exc:
        raise StructureError(f"cannot write the structure file: {exc.strerror}", field="output",
                             value=str(path), allowed="a path in an existing, writable folder") from None
    return p


def read_structure(path: str | os.PathLike) -> Atoms:
    """Read a CIF, extended XYZ or POSCAR file (format from the file name) as ASE Atoms."""
    p = Path(path)
    fmt = structure_format(p)
    if not p.is_file():
        raise StructureError("structure file not found", field="input", value=str(path),
                             allowed="an existing file")
    try:
        if fmt == "cif":
            from pymatgen.core import Structure
            from pymatgen.io.ase import AseAtomsAdaptor

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                struct = Structure.from_file(p)
            a = AseAtomsAdaptor.get_atoms(struct)
            atoms = Atoms(numbers=a.numbers, positions=a.positions, cell=a.cell, pbc=True)
        else:
            from ase.io import read

            atoms = read(p, format=fmt)
    except StructureError:
        raise
    except (StopIteration, ValueError, IndexError, KeyError, TypeError, AssertionError) as exc:
        # ase/pymatgen on an empty or malformed file (an empty extxyz raises StopIteration)
        detail = f" ({type(exc).__name__}: {exc})" if str(exc) else ""
        raise StructureError(f"cannot read a structure from the file{detail}".replace("\n", " "),
                             field="input", value=str(path),
                             allowed=f"a non-empty {fmt} file with at least one structure"
                             ) from None
    if len(atoms) == 0:
        raise StructureError("the structure file holds no atoms", field="input", value=str(path),
                             allowed="a structure with at least one atom")
    return atoms
