#!/usr/bin/env bash
# Cluster tests of viglas: a real single-node Slurm (Debian slurm-wlm + munge) and a
# MongoDB-wire server (PyPI secantusdb, GPL beta, test-only) started by the tests
# themselves, driven through jobflow-remote. Needs root (slurmd, munged).
#   scripts/ci_hpc.sh            # install what the tests need, then run them
#   VIGLAS_HPC_SKIP_INSTALL=1 scripts/ci_hpc.sh   # only run them
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg OMP_NUM_THREADS=1
if [ "${VIGLAS_HPC_SKIP_INSTALL:-0}" != "1" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
    pip install -q -e ".[hpc]" secantusdb
fi
# A missing prerequisite fails here instead of skipping.
export VIGLAS_HPC_REQUIRED=1
exec python -m pytest -m hpc tests/hpc -v -s --durations=10 -p no:cacheprovider
