"""Analysis of trajectories: MSD, diffusion, conductivity, fits (viglas.analysis)."""
