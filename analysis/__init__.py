"""Analysis of trajectories: MSD, diffusion, conductivity, fits (viglas.analysis).

Pure functions on arrays and small result dataclasses (``to_dict``/``from_dict``):

* readers — :func:`read_trajectory` (H5MD, ASE traj/extxyz, XDATCAR, LAMMPS dump);
* :func:`msd_fft`, :func:`pool_msd` — MSD over all time origins, per species;
* :func:`diffusion_coefficient` -> :class:`DiffusionResult` — D with a calibrated error;
* :func:`analyze_trajectory` -> :class:`TransportResult` — D, sigma, Haven ratio
  (same option names as ``viglas analyze``);
* :func:`read_msd_table`, :func:`msd_from_table`, :func:`analyze_msd_table` — D from an
  MSD table when no trajectory is available (model-only error);
* :func:`nernst_einstein_sigma_mS_cm`, :func:`sigma_from_d_fit` (sigma at an
  extrapolated temperature = Nernst–Einstein on the extrapolated D);
* :func:`fit_arrhenius`, :func:`fit_vft`, :func:`compare_models`;
* :func:`fit_percolation`, :func:`spanning_summary`;
* structure: :func:`rdf`, :func:`coordination_numbers`, :func:`bridging_oxygen`,
  :func:`network_clusters`, :func:`fit_tg`, :func:`fit_gibbs_dimarzio`;
* plots: :func:`plot_msd`, :func:`plot_arrhenius`, :func:`plot_vft`,
  :func:`plot_percolation`, :func:`plot_tg`, :func:`plot_screening`.
"""

from .arrhenius import (ArrheniusFit, VFTFit, compare_models, fit_arrhenius, fit_vft,
                        ne_density_from_points, sigma_from_d_fit)
from .conductivity import (TransportResult, analyze_msd_table, analyze_positions,
                           analyze_trajectory, nernst_einstein_sigma_mS_cm,
                           number_density_per_cm3, write_transport)
from .diffusion import (DiffusionResult, collective_diffusion, diffusion_coefficient,
                        diffusive_window, he2018_rsd, random_walk_msd_covariance)
from .io import MSDTable, TrajectoryData, read_msd_table, read_trajectory
from .msd import MSDResult, msd_fft, msd_from_table, pool_msd
from .onsager import OnsagerResult, onsager_from_trajectory, onsager_transport
from .percolation import PercolationFit, fit_percolation, spanning_summary
from .tg_rate import TgRateFit, fit_tg_rate
from .plots import (plot_arrhenius, plot_msd, plot_percolation, plot_screening, plot_tg,
                    plot_vft)
from .structure import (GibbsDiMarzioFit, NetworkResult, TgFit, bridging_oxygen,
                        coordination_numbers, fit_gibbs_dimarzio, fit_tg, network_clusters, rdf)

__all__ = [
    "OnsagerResult", "onsager_from_trajectory", "onsager_transport", "TgRateFit", "fit_tg_rate",
    "ArrheniusFit", "VFTFit", "compare_models", "fit_arrhenius", "fit_vft",
    "ne_density_from_points", "sigma_from_d_fit",
    "TransportResult", "analyze_msd_table", "analyze_positions", "analyze_trajectory",
    "nernst_einstein_sigma_mS_cm", "number_density_per_cm3", "write_transport",
    "DiffusionResult", "collective_diffusion", "diffusion_coefficient", "diffusive_window",
    "he2018_rsd", "random_walk_msd_covariance",
    "MSDTable", "TrajectoryData", "read_msd_table", "read_trajectory", "MSDResult", "msd_fft",
    "msd_from_table", "pool_msd",
    "PercolationFit", "fit_percolation", "spanning_summary",
    "plot_arrhenius", "plot_msd", "plot_percolation", "plot_screening", "plot_tg",
    "plot_vft",
    "GibbsDiMarzioFit", "NetworkResult", "TgFit", "bridging_oxygen", "coordination_numbers",
    "fit_gibbs_dimarzio", "fit_tg", "network_clusters", "rdf",
]
