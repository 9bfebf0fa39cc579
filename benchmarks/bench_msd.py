"""Benchmark: MSD + diffusion coefficient of Li from one H5MD file, viglas vs peers.

Protocol (issue 15 item 4):

* one synthetic, seeded trajectory file per (frames, mobile ions): 200 atoms in all,
  ``--mobile`` Li hopping 2.5 Å at Poisson times (D = 1e-5 cm²/s) and a framework
  (Al, Cl, O) vibrating about fixed sites, 0.2 Å thermal noise on every atom, 10 fs
  between frames, cubic 13.5 Å cell, written by viglas' own ``H5MDWriter`` (wrapped
  positions + image flags, lzf chunks: what MD writes by default);
* every tool starts from that same file and its time includes reading it:
  viglas = ``read_trajectory`` (framework drift removed) + ``msd_fft`` + ``diffusion_coefficient``;
  pymatgen-analysis-diffusion = h5py read + unwrap + ``DiffusionAnalyzer(..., smoothed="max")``
  (given the displacement array; no Structure per frame, which favours it);
  kinisi = h5py read + list of ASE Atoms + ``DiffusionAnalyzer.from_ase`` + ``diffusion()``
  (MCMC with its defaults), once with its default lags (every lag) and once with 200 lags;
* the tools being compared run one after the other **in one process** and the number
  compared is **CPU time** (``time.process_time``), which a shared machine disturbs far
  less than wall time; wall time is recorded too;
* peak memory of viglas (``VmHWM``) is measured in a separate process that runs viglas
  only, so the peers' arrays do not count;
* before the timed runs, each child runs every compared tool once on a separate
  300-frame file (imports, numba loading viglas' compiled kernels from its cache, the
  peers' first-call set-up stay out of the timing for every tool); the CPU time of
  that warm-up is recorded per tool (``warm_up_cpu_s``); ``--no-warm-up`` times first
  calls instead; ``--repeats`` runs each comparison in several fresh processes.

Usage (the command behind benchmarks/RESULTS.md)::

    python benchmarks/bench_msd.py --frames 100000 --mobile 40,150 \
        --kinisi-frames 1000,10000 --data-dir /tmp/bm/data --only-generate
    python benchmarks/bench_msd.py --frames 100000 --mobile 40,150 \
        --kinisi-frames 1000,10000 --timeout 300 --kinisi-default-timeout 120 \
        --data-dir /tmp/bm/data --out benchmarks/bench_msd.json
    python benchmarks/bench_msd.py ... --modes compare-kinisi200,compare-pmg --repeats 3
    # before/after in the same processes: the previous analysis code as a baseline
    mkdir -p /tmp/base && git show REV:analysis/diffusion.py > /tmp/base/diffusion.py
    python benchmarks/bench_msd.py ... --viglas-baseline /tmp/base
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

N_ATOMS = 200
L = 13.5
DT_FS = 10.0
D_A2FS = 1e-4  # 1e-5 cm²/s


def make_positions(n_frames: int, n_li: int = 40, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Unwrapped positions (T, 200, 3) in Å and symbols (n_li Li, the rest Al/Cl/O 2:5:1)."""
    rng = np.random.default_rng(seed)
    rest = N_ATOMS - n_li
    n_al, n_o = rest // 4, rest // 8
    n_cl = rest - n_al - n_o
    symbols = ["Li"] * n_li + ["Al"] * n_al + ["Cl"] * n_cl + ["O"] * n_o
    sites = rng.uniform(0, L, (N_ATOMS, 3))
    pos = np.empty((n_frames, N_ATOMS, 3))
    pos[:] = sites[None]
    rate = 6 * D_A2FS / 2.5**2 * DT_FS
    k = rng.poisson(rate, (n_frames, n_li))
    v = rng.normal(size=(n_frames, n_li, 3))
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    pos[:, :n_li] += np.cumsum(2.5 * k[..., None] * v, axis=0)
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


def _read_unwrapped(h5: str) -> tuple[np.ndarray, list[str]]:
    """All atoms' unwrapped positions (T, N, 3) from the H5MD file (for the peers)."""
    import h5py

    from viglas.trajectory import H5MDTrajectory

    with H5MDTrajectory(h5) as tr:
        symbols = list(tr.symbols)
    with h5py.File(h5, "r") as f:
        p = f["particles/all"]
        pos = p["position/value"][()].astype(np.float64)
        img = p["image/value"][()]
        cell = p["box/edges/value"][0]
    pos += img @ cell
    return pos, symbols


def _baseline_modules(code_dir: str) -> dict:
    """Functions of another copy of ``analysis/`` (``--viglas-baseline``): each of
    ``diffusion.py``, ``msd.py``, ``io.py`` found in ``code_dir`` is loaded as a module of
    the package ``viglas.analysis`` under another name and replaces the installed
    one for this run only; the others are the installed ones."""
    import importlib.util

    import viglas.analysis as va

    funcs = {"diffusion_coefficient": va.diffusion_coefficient, "msd_fft": va.msd_fft,
             "read_trajectory": va.read_trajectory}
    for mod, fn in (("io", "read_trajectory"), ("msd", "msd_fft"),
                    ("diffusion", "diffusion_coefficient")):
        path = Path(code_dir) / f"{mod}.py"
        if not path.exists():
            continue
        name = f"viglas.analysis._baseline_{mod}"
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, path)
            m = importlib.util.module_from_spec(spec)
            m.__package__ = "viglas.analysis"
            sys.modules[name] = m
            spec.loader.exec_module(m)
        funcs[fn] = getattr(sys.modules[name], fn)
    return funcs


def run_viglas(h5: str, code_dir: str | None = None) -> dict:
    if code_dir:
        f = _baseline_modules(code_dir)
        diffusion_coefficient, msd_fft, read_trajectory = (
            f["diffusion_coefficient"], f["msd_fft"], f["read_trajectory"])
    else:
        from viglas.analysis import diffusion_coefficient, msd_fft, read_trajectory

    c0, w0 = time.process_time(), time.perf_counter()
    d = read_trajectory(h5, species="Li", drift="framework")
    c1 = time.process_time()
    m = msd_fft(d.positions, d.dt_fs, species="Li")
    del d
    r = diffusion_coefficient(m)
    c2, w2 = time.process_time(), time.perf_counter()
    return {"cpu_s": c2 - c0, "cpu_read_s": c1 - c0, "cpu_msd_fit_s": c2 - c1, "wall_s": w2 - w0,
            "d_cm2_s": r.d_cm2_s, "d_err_cm2_s": r.d_err_cm2_s,
            "fit_window_fs": [r.t_start_fs, r.t_end_fs]}


def run_pmg(h5: str) -> dict:
    import warnings

    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer
    from pymatgen.core import Lattice, Structure

    c0, w0 = time.process_time(), time.perf_counter()
    pos, symbols = _read_unwrapped(h5)
    disp = np.ascontiguousarray(np.transpose(pos - pos[:1], (1, 0, 2)))  # (N, T, 3)
    s = Structure(Lattice.cubic(L), symbols, np.mod(pos[0], L) / L)
    del pos
    c1 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        da = DiffusionAnalyzer(s, disp, "Li", 600, DT_FS, 1, smoothed="max")
    c2, w2 = time.process_time(), time.perf_counter()
    return {"cpu_s": c2 - c0, "cpu_read_s": c1 - c0, "cpu_msd_fit_s": c2 - c1, "wall_s": w2 - w0,
            "d_cm2_s": float(da.diffusivity), "d_err_cm2_s": float(da.diffusivity_std_dev)}


def run_kinisi(h5: str, n_lags: int | None) -> dict:
    import warnings

    import scipp as sc
    from ase import Atoms
    from kinisi.analyze import DiffusionAnalyzer

    c0, w0 = time.process_time(), time.perf_counter()
    pos, symbols = _read_unwrapped(h5)
    frames = [Atoms(symbols, positions=np.mod(p, L), cell=np.eye(3) * L, pbc=True) for p in pos]
    n = len(pos)
    del pos
    kw = {}
    if n_lags is not None:
        lags = np.unique(np.round(np.geomspace(1, n - 1, n_lags)).astype(int))
        kw["dt"] = sc.array(dims=["time interval"], values=lags * DT_FS / 1000.0, unit="ps")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = DiffusionAnalyzer.from_ase(frames, specie="Li", time_step=DT_FS * sc.Unit("fs"),
                                       step_skip=1 * sc.Unit("dimensionless"), progress=False, **kw)
        a.diffusion(0.1 * n * DT_FS / 1000 * sc.Unit("ps"), progress=False,
                    random_state=np.random.RandomState(0))
    c1, w1 = time.process_time(), time.perf_counter()
    d = np.asarray(a.D.values)
    return {"cpu_s": c1 - c0, "wall_s": w1 - w0, "d_cm2_s": float(d.mean()),
            "d_err_cm2_s": float(d.std()), "n_lags": "default (all)" if n_lags is None else n_lags}


def _peak_rss_mib() -> float:
    """Peak resident memory of this process (VmHWM; not inherited from the parent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _warm_up(tools: list[str], baseline: str | None = None) -> dict:
    """Run every tool of the comparison once on a small separate file (300 frames,
    another size than the measured one, so no result cache applies) before the timed
    runs: imports, numba loading viglas' compiled kernels from its on-disk cache, and
    any first-call set-up of the peers stay out of the timed numbers for every tool.
    Returns the CPU seconds of each warm-up (viglas' includes ``import numba``)."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench_msd_warm_") as tmp:
        h5 = str(Path(tmp) / "warm.h5")
        pos, symbols = make_positions(300, 40, seed=1)
        write_h5md(Path(h5), pos, symbols)
        for tool in tools:
            c0 = time.process_time()
            if tool == "viglas":
                import numba  # noqa: F401

                run_viglas(h5)
            elif tool == "viglas_baseline":
                run_viglas(h5, baseline)
            elif tool == "pmg":
                run_pmg(h5)
            elif tool == "kinisi":
                run_kinisi(h5, 20)
            out[tool] = time.process_time() - c0
    return out


def _child(mode: str, h5: str, warm: bool = True, baseline: str | None = None,
           baseline_first: bool = False) -> None:
    """mode: 'viglas-mem' | 'compare-pmg' | 'compare-kinisi' | 'compare-kinisi200' |
    'viglas-only' (viglas alone; with ``baseline``, only the baseline code).
    With ``baseline`` (a directory with copies of analysis modules), the comparisons
    also time that code, right after the installed viglas (or right before it with
    ``baseline_first``: the first run in a process also pays first-touch costs such as
    fresh memory pages) and before the peer."""
    import ase.data  # noqa: F401  (imports outside the timing, for every tool)
    import h5py  # noqa: F401
    import scipy.fft  # noqa: F401
    import scipy.linalg  # noqa: F401

    import viglas.analysis  # noqa: F401
    import viglas.trajectory  # noqa: F401

    out: dict = {}
    if mode == "viglas-only":  # one version of viglas alone: the installed or the baseline
        key = "viglas_baseline" if baseline else "viglas"
        out["warm_up_cpu_s"] = (_warm_up([key], baseline) if warm else {})
        out[key] = run_viglas(h5, baseline)
    elif mode == "viglas-mem":
        out["warm_up_cpu_s"] = _warm_up(["viglas"]) if warm else {}
        out["viglas"] = run_viglas(h5)
        out["viglas"]["peak_rss_MiB"] = _peak_rss_mib()
    elif mode == "compare-pmg":
        import pymatgen.analysis.diffusion.analyzer  # noqa: F401

        base = ["viglas_baseline"] if baseline else []
        out["warm_up_cpu_s"] = _warm_up(["viglas"] + base + ["pmg"], baseline) if warm else {}
        _run_both(out, h5, baseline, baseline_first)
        out["pmg"] = run_pmg(h5)
    else:
        import kinisi.analyze  # noqa: F401

        base = ["viglas_baseline"] if baseline else []
        out["warm_up_cpu_s"] = (_warm_up(["viglas"] + base + ["kinisi"], baseline)
                                if warm else {})
        _run_both(out, h5, baseline, baseline_first)
        out["kinisi"] = run_kinisi(h5, 200 if mode == "compare-kinisi200" else None)
    print(json.dumps(out))


def _run_both(out: dict, h5: str, baseline: str | None, baseline_first: bool) -> None:
    """viglas, and the baseline code if given, in the requested order."""
    if baseline and baseline_first:
        out["viglas_baseline"] = run_viglas(h5, baseline)
    out["viglas"] = run_viglas(h5)
    if baseline and not baseline_first:
        out["viglas_baseline"] = run_viglas(h5, baseline)
    if baseline:
        out["baseline_first"] = bool(baseline_first)


def _generate(n_frames: int, n_li: int, path: str) -> None:
    pos, symbols = make_positions(n_frames, n_li)
    write_h5md(Path(path), pos, symbols)


def measure(mode: str, h5: Path, timeout: float, warm: bool = True,
            baseline: str | None = None, baseline_first: bool = False) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    try:
        cp = subprocess.run([sys.executable, __file__, "--child", mode, str(h5)]
                            + ([] if warm else ["--no-warm-up"])
                            + (["--viglas-baseline", baseline] if baseline else [])
                            + (["--baseline-first"] if baseline and baseline_first else []),
                            capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s (wall)"}
    if cp.returncode != 0:
        lines = cp.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {cp.returncode}"}
    return json.loads(cp.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100_000, help="size for viglas vs pymatgen")
    ap.add_argument("--mobile", default="40,150", help="numbers of Li (of 200 atoms)")
    ap.add_argument("--kinisi-frames", default="1000,10000", help="sizes for viglas vs kinisi")
    ap.add_argument("--timeout", type=float, default=900.0, help="per child process, s (wall)")
    ap.add_argument("--kinisi-default-timeout", type=float, default=600.0,
                    help="for kinisi with its default (all) lags, s (wall)")
    ap.add_argument("--out", default="benchmarks/bench_msd.json")
    ap.add_argument("--data-dir", default=None,
                    help="keep the generated trajectories here and reuse them (generate "
                         "with --only-generate before a quiet-machine run)")
    ap.add_argument("--only-generate", action="store_true",
                    help="write the trajectories into --data-dir and stop")
    ap.add_argument("--modes", default="viglas-mem,compare-pmg,compare-kinisi,compare-kinisi200",
                    help="which measurements to run (also: viglas-only, viglas alone at the "
                         "--kinisi-frames sizes; with --viglas-baseline, alternately the "
                         "installed and the baseline code, one fresh process each)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="fresh processes per comparison (not for kinisi's default lags "
                         "or the memory run); report the median ratio")
    ap.add_argument("--no-warm-up", action="store_true",
                    help="time first calls too (imports excepted): no warm-up run per tool")
    ap.add_argument("--viglas-baseline", default=None, metavar="DIR",
                    help="also time another copy of viglas' analysis code in the same "
                         "processes (a directory with diffusion.py / msd.py / io.py, e.g. "
                         "from `git show REV:analysis/diffusion.py`): a before/after "
                         "comparison under the same load")
    ap.add_argument("--baseline-order", choices=["after", "before", "alternate"],
                    default="after",
                    help="time the baseline after viglas (default), before it, or "
                         "alternately (odd repeats: before)")
    ap.add_argument("--baseline-first", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--generate", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(*a.child, warm=not a.no_warm_up, baseline=a.viglas_baseline,
               baseline_first=a.baseline_first)
        return
    if a.generate:
        _generate(int(a.generate[0]), int(a.generate[1]), a.generate[2])
        return
    results = []
    mobile = [int(x) for x in a.mobile.split(",") if x]
    kin = [int(x) for x in a.kinisi_frames.split(",") if x]
    wanted = set(a.modes.split(","))
    t_start = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="bench_msd_") as tmp:
        data = Path(a.data_dir) if a.data_dir else Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        for n_li in mobile:
            for n in sorted(set(kin) | {a.frames}):
                h5 = data / f"traj_{n}_{n_li}.h5"
                if not h5.exists():
                    subprocess.run([sys.executable, __file__, "--generate", str(n), str(n_li),
                                    str(h5)], check=True)
                if a.only_generate:
                    continue
                modes = (["viglas-mem", "compare-pmg"] if n == a.frames else []) + \
                    (["compare-kinisi", "compare-kinisi200", "viglas-only"] if n in kin else [])
                for mode in [m for m in modes if m in wanted]:
                    versions = [None]
                    if mode == "viglas-only" and a.viglas_baseline:
                        # fresh processes, alternately the installed code and the baseline
                        versions = [None, a.viglas_baseline]
                    for rep, version in [(r_, v_) for r_ in range(
                            1 if mode in ("compare-kinisi", "viglas-mem") else a.repeats)
                            for v_ in (versions if r_ % 2 == 0 else versions[::-1])]:
                        r = {"mode": mode, "n_frames": n, "n_li": n_li, "n_atoms": N_ATOMS,
                             "repeat": rep,
                             **measure(mode, h5, a.kinisi_default_timeout
                                       if mode == "compare-kinisi" else a.timeout,
                                       warm=not a.no_warm_up,
                                       baseline=(version if mode == "viglas-only" else
                                                 a.viglas_baseline if mode != "viglas-mem"
                                                 else None),
                                       baseline_first=(a.baseline_order == "before" or
                                                       (a.baseline_order == "alternate"
                                                        and rep % 2 == 1)))}
                        print(json.dumps(r), flush=True)
                        results.append(r)
                if not a.data_dir:
                    h5.unlink()
    if a.only_generate:
        return
    load = os.getloadavg()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"command": " ".join(sys.argv), "started": t_start,
                                       "ended": time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                              time.gmtime()),
                                       "loadavg_at_end": load, "warm_up": not a.no_warm_up,
                                       "viglas_baseline": a.viglas_baseline,
                                       "results": results}, indent=1) + "\n")
    print("\n| frames | Li | comparison | viglas CPU s | peer CPU s | ratio | viglas peak MiB |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for r in results:
        if "error" in r:
            print(f"| {r['n_frames']} | {r['n_li']} | {r['mode']} | {r['error']} | | | |")
        elif r["mode"] == "viglas-only":
            k = "viglas_baseline" if "viglas_baseline" in r else "viglas"
            print(f"| {r['n_frames']} | {r['n_li']} | viglas alone ({k}) | "
                  f"{r[k]['cpu_s']:.3f} | | | |")
        elif r["mode"] == "viglas-mem":
            v = r["viglas"]
            print(f"| {r['n_frames']} | {r['n_li']} | viglas alone | {v['cpu_s']:.2f} | | | "
                  f"{v['peak_rss_MiB']:.0f} |")
        else:
            peer = [k for k in r if k in ("pmg", "kinisi")][0]
            v, p = r["viglas"], r[peer]
            print(f"| {r['n_frames']} | {r['n_li']} | {r['mode']} | {v['cpu_s']:.3f} | "
                  f"{p['cpu_s']:.2f} | {p['cpu_s'] / v['cpu_s']:.1f} | |")
            if "viglas_baseline" in r:
                b = r["viglas_baseline"]
                print(f"| {r['n_frames']} | {r['n_li']} | {r['mode']} (baseline code) | "
                      f"{b['cpu_s']:.3f} | {p['cpu_s']:.2f} | {p['cpu_s'] / b['cpu_s']:.1f} | |")


if __name__ == "__main__":
    main()
