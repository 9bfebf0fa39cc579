"""viglas: ion transport in viscoelastic inorganic glass electrolytes.

Subpackages: :mod:`viglas.structures` (compositions, glass models),
:mod:`viglas.workflows` (MD, jobflow makers and flows), :mod:`viglas.analysis`
(MSD, diffusion, conductivity, fits, export), :mod:`viglas.potentials` (the
classical ionic potential). Internal units: Å, fs, K, eV, amu.
"""

__version__ = "0.1.0"

from viglas.errors import ViglasError  # noqa: E402

__all__ = ["ViglasError", "__version__"]
