"""Glass compositions and initial glass models (viglas.structures).

Public API::

    from viglas.structures import GlassComposition, build_glass, write_structure
    comp = GlassComposition.from_formula("LiAlCl2.5O0.75")       # LACO
    atoms = build_glass(comp, 200, method="substitution", seed=0)  # ase.Atoms, 210 atoms
    write_structure(atoms, "laco.cif")

Units: Å, g/cm³. Every random choice takes ``seed``.
"""

from viglas.structures.builder import (METHODS, available_memory_bytes, build_glass,
                                       check_memory, estimate_memory_bytes)
from viglas.structures.composition import (
    ALKALI,
    FORMERS,
    GlassComposition,
    SupercellSize,
    supercell_size,
)
from viglas.structures.density import estimate_density
from viglas.structures.geometry import (
    SHANNON_RADII,
    default_min_distance,
    min_distance_report,
    min_distance_table,
)
from viglas.structures.io import read_structure, structure_format, write_structure
from viglas.structures.packing import build_packing
from viglas.structures.prototypes import load_prototype, prototype_path
from viglas.structures.substitution import build_substitution

__all__ = [
    "ALKALI", "FORMERS", "METHODS", "SHANNON_RADII", "GlassComposition", "SupercellSize",
    "available_memory_bytes", "build_glass", "build_packing", "check_memory",
    "estimate_memory_bytes", "build_substitution", "default_min_distance",
    "estimate_density", "load_prototype", "min_distance_report", "min_distance_table",
    "prototype_path", "read_structure", "structure_format", "supercell_size", "write_structure",
]
