"""The classical ionic potential (Buckingham + B/r^12 wall + DSF Coulomb, optional
three-body angle term around network formers) and its parameters.

- :class:`IonicPotential` — ASE calculator (energy, forces, stress).
- :func:`load_parameters` / :func:`save_parameters` — ``viglas-ionic/1`` YAML files;
  ``load_parameters(None)`` reads the shipped plain set ``chgnet-ionic``, ``load_parameters("trial")``
  the shipped trial set.
- :mod:`viglas.potentials.ewald` — reference Ewald sum for accuracy checks.
"""

from viglas.potentials.ionic import IonicPotential
from viglas.potentials.parameters import (
    CoulombSettings,
    IonicParameters,
    PairParameters,
    chgnet_ionic_path,
    load_parameters,
    pair_key,
    parameters_from_dict,
    save_parameters,
    trial_parameters_path,
)

__all__ = [
    "CoulombSettings",
    "IonicParameters",
    "IonicPotential",
    "PairParameters",
    "chgnet_ionic_path",
    "load_parameters",
    "pair_key",
    "parameters_from_dict",
    "save_parameters",
    "trial_parameters_path",
]
