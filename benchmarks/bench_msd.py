"""Benchmark: MSD + diffusion coefficient of Li from one trajectory, viglas vs peers.

Peers: pymatgen-analysis-diffusion (``DiffusionAnalyzer``, smoothed="max", which uses an
FFT over all time origins since 2024) and kinisi (``DiffusionAnalyzer.from_ase`` +
``diffusion``: MSD over all lags and Bayesian GLS by MCMC).

The trajectory is synthetic and seeded: 200 atoms (40 Li hopping 2.5 Å at Poisson
times with D = 1e-5 cm²/s, 40 Al, 100 Cl, 20 O vibrating about fixed sites, all with
0.2 Å thermal noise), 10 fs between frames, cubic 13.5 Å cell. For viglas it is stored
as a viglas H5MD file (same layout as :class:`viglas.trajectory.H5MDWriter`, written in
bulk, uncompressed) and the timing includes reading it, drift removal, MSD and the
GLS fit. pymatgen-analysis-diffusion is handed the displacement array directly
(no Structure objects: favourable to it); kinisi gets a list of ASE Atoms (its
documented entry point; building the list is not timed).

Each (tool, size) runs in its own subprocess; wall time and peak resident memory
(``VmHWM`` of that process, including the input data it holds) are reported.

Usage::

    python benchmarks/bench_msd.py --frames 100000 --peer-frames 2000,5000 \
        --kinisi-frames 1000,2000 --out benchmarks/bench_msd.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_LI, N_AL, N_CL, N_O = 40, 40, 100, 20
L = 13.5
DT_FS = 10.0
D_A2FS = 1e-4  # 1e-5 cm²/s


def make_positions(n_frames: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Unwrapped positions (T, 200, 3) in Å and symbols."""
    rng = np.random.default_rng(seed)
    n = N_LI + N_AL + N_CL + N_O
    symbols = ["Li"] * N_LI + ["Al"] * N_AL + ["Cl"] * N_CL + ["O"] * N_O
    sites = rng.uniform(0, L, (n, 3))
    pos = np.empty((n_frames, n, 3))
    pos[:] = sites[None]
    rate = 6 * D_A2FS / 2.5**2 * DT_FS
    k = rng.poisson(rate, (n_frames, N_LI))
    v = rng.normal(size=(n_frames, N_LI, 3))
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    pos[:, :N_LI] += np.cumsum(2.5 * k[..., None] * v, axis=0)
    pos += rng.normal(0, 0.2, pos.shape)
    return pos, symbols


def write_h5md(path: Path, pos: np.ndarray, symbols: list[str]) -> None:
    """Write the trajectory with viglas' own writer, in blocks (lzf, the format MD writes by default)."""
    from ase.data import atomic_masses, atomic_numbers

    from viglas.trajectory import H5MDWriter

    numbers = np.array([atomic_numbers[s] for s in symbols], dtype=np.int32)
    with H5MDWriter(path, numbers, atomic_masses[numbers], timestep_fs=DT_FS) as w:
        for s in range(0, len(pos), 10000):
            e = min(len(pos), s + 10000)
            w.append_frames(np.arange(s, e), np.arange(s, e) * DT_FS, pos[s:e], np.eye(3) * L)


def run_viglas(h5: str) -> dict:
    import scipy.fft  # noqa: F401  (imports outside the timing, as for the peers)
    import scipy.linalg  # noqa: F401

    from viglas.analysis import diffusion_coefficient, msd_fft, read_trajectory

    t0 = time.perf_counter()
    d = read_trajectory(h5, species="Li", drift="framework")
    t1 = time.perf_counter()
    m = msd_fft(d.positions, d.dt_fs, species="Li")
    r = diffusion_coefficient(m)
    t2 = time.perf_counter()
    return {"seconds": t2 - t0, "seconds_read": t1 - t0, "seconds_msd_fit": t2 - t1,
            "d_cm2_s": r.d_cm2_s, "d_err_cm2_s": r.d_err_cm2_s,
            "fit_window_fs": [r.t_start_fs, r.t_end_fs]}


def run_pmg(npy: str) -> dict:
    import warnings

    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer
    from pymatgen.core import Lattice, Structure

    pos = np.load(npy, mmap_mode="r")
    _, symbols = make_positions(2)
    disp = np.ascontiguousarray(np.transpose(pos - pos[:1], (1, 0, 2)))  # (N, T, 3)
    s = Structure(Lattice.cubic(L), symbols, np.mod(pos[0], L) / L)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        da = DiffusionAnalyzer(s, disp, "Li", 600, DT_FS, 1, smoothed="max")
    t1 = time.perf_counter()
    return {"seconds": t1 - t0, "d_cm2_s": float(da.diffusivity),
            "d_err_cm2_s": float(da.diffusivity_std_dev)}


def run_kinisi(npy: str) -> dict:
    import warnings

    import scipp as sc
    from ase import Atoms
    from kinisi.analyze import DiffusionAnalyzer

    pos = np.load(npy, mmap_mode="r")
    _, symbols = make_positions(2)
    frames = [Atoms(symbols, positions=np.mod(p, L), cell=np.eye(3) * L, pbc=True) for p in pos]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = DiffusionAnalyzer.from_ase(frames, specie="Li", time_step=DT_FS * sc.Unit("fs"),
                                       step_skip=1 * sc.Unit("dimensionless"), progress=False)
        a.diffusion(0.1 * len(pos) * DT_FS / 1000 * sc.Unit("ps"), progress=False,
                    random_state=np.random.RandomState(0))
    t1 = time.perf_counter()
    d = np.asarray(a.D.values)
    return {"seconds": t1 - t0, "d_cm2_s": float(d.mean()), "d_err_cm2_s": float(d.std())}


def _child(tool: str, arg: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = {"viglas": run_viglas, "pmg": run_pmg, "kinisi": run_kinisi}[tool](arg)
    out["peak_rss_MiB"] = _peak_rss_mib()
    print(json.dumps(out))


def _peak_rss_mib() -> float:
    """Peak resident memory of this process (VmHWM; not inherited from the parent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _generate(n_frames: int, workdir: str) -> None:
    pos, symbols = make_positions(n_frames)
    np.save(Path(workdir) / f"pos_{n_frames}.npy", pos)
    write_h5md(Path(workdir) / f"traj_{n_frames}.h5", pos, symbols)


def measure(tool: str, n_frames: int, workdir: Path, timeout: float) -> dict:
    npy = workdir / f"pos_{n_frames}.npy"
    h5 = workdir / f"traj_{n_frames}.h5"
    if not npy.exists():  # generated in a subprocess so this process stays small
        subprocess.run([sys.executable, __file__, "--generate", str(n_frames), str(workdir)],
                       check=True)
    arg = str(h5 if tool == "viglas" else npy)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    try:
        cp = subprocess.run([sys.executable, __file__, "--child", tool, arg], capture_output=True,
                            text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"tool": tool, "n_frames": n_frames, "error": f"timeout after {timeout:.0f} s"}
    if cp.returncode != 0:
        return {"tool": tool, "n_frames": n_frames, "error": cp.stderr.strip().splitlines()[-1]}
    res = json.loads(cp.stdout.strip().splitlines()[-1])
    res.update(tool=tool, n_frames=n_frames, n_atoms=N_LI + N_AL + N_CL + N_O, n_li=N_LI)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100_000, help="full size (viglas + pmg)")
    ap.add_argument("--peer-frames", default="2000,10000", help="sizes for viglas vs pmg")
    ap.add_argument("--kinisi-frames", default="1000,2000", help="sizes for kinisi")
    ap.add_argument("--timeout", type=float, default=240.0, help="per run, s")
    ap.add_argument("--no-full-pmg", action="store_true")
    ap.add_argument("--out", default="benchmarks/bench_msd.json")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--generate", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(*a.child)
        return
    if a.generate:
        _generate(int(a.generate[0]), a.generate[1])
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_msd_") as tmp:
        tmp = Path(tmp)
        kin = [int(x) for x in a.kinisi_frames.split(",") if x]
        peer = [int(x) for x in a.peer_frames.split(",") if x]
        for n in sorted(set(kin) | set(peer) | {a.frames}):
            tools = ["viglas"]
            if n in peer or (n == a.frames and not a.no_full_pmg):
                tools.append("pmg")
            if n in kin:
                tools.append("kinisi")
            for tool in tools:
                r = measure(tool, n, tmp, a.timeout)
                print(json.dumps(r), flush=True)
                results.append(r)
            for f in tmp.glob(f"*_{n}.*"):
                f.unlink()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"command": " ".join(sys.argv), "results": results},
                                      indent=1) + "\n")
    print("\n| frames | tool | wall s | peak RSS MiB | D (cm2/s) | err |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in results:
        if "error" in r:
            print(f"| {r['n_frames']} | {r['tool']} | {r['error']} | | | |")
        else:
            print(f"| {r['n_frames']} | {r['tool']} | {r['seconds']:.2f} | {r['peak_rss_MiB']:.0f} "
                  f"| {r['d_cm2_s']:.3e} | {r['d_err_cm2_s']:.1e} |")


if __name__ == "__main__":
    main()
