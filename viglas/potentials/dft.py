"""First-principles reference: GPAW (PBE, plane waves) + DFT-D3(BJ), and its label store.

The ``gpaw`` calculator of the registry (extra ``dft``) is PBE in plane waves with the
Grimme D3 dispersion correction in Becke–Johnson damping added on top
(``ase.calculators.mixing.SumCalculator``). Every setting is in ``params``:

==================  ==========  ======================================================
key                 default     meaning
==================  ==========  ======================================================
ecut_eV             450         plane-wave cutoff (eV)
xc                  "PBE"       exchange–correlation functional (libxc name for GPAW)
kpts                None        explicit Monkhorst–Pack mesh ``[n1, n2, n3]``; None:
                                from ``kpt_density_A``
kpt_density_A       1.5         k-points per Å⁻¹ (ASE's ``{"density": ...}`` rule,
                                n_i = ceil(2π·density/|a_i|) for orthogonal cells):
                                Γ only for edges ≥ 9.4 Å, 2 for 4.7–9.4 Å
gamma               True        mesh contains Γ
smearing_eV         0.05        Fermi–Dirac width (these are insulators; only keeps
                                the SCF stable)
d3                  "bj"        "bj" (D3(BJ)), "zero" (D3(0)) or "none"
d3_method           None        functional name for the D3 parameters (None: ``xc``)
convergence         {}          passed to GPAW (``energy``, ``density``, ...)
maxiter             300         SCF iteration cap
txt                 None        GPAW log file (None: silent)
threads             1           BLAS threads (GPAW is serial here)
==================  ==========  ======================================================

Why ``dftd3`` (the PyPI ``dftd3`` package, the reference simple-dftd3 library by the
Grimme group): it ships compiled manylinux wheels with no torch dependency, has an ASE
calculator with analytic forces and virial, and is the implementation the D3 papers
define; ``tad-dftd3`` and ``torch-dftd`` would pull torch into the ``dft`` extra.

Labels are stored content-addressed (:class:`DFTLabelStore`): one gzipped extxyz per
configuration under ``<root>/<settings_hash>/<structure_hash>_k<mesh>.extxyz.gz``,
where ``settings_hash`` covers every setting that changes the numbers *and* the code
versions (gpaw, gpaw-data setups, dftd3, libxc), so a change of either never mixes
labels, and ``<mesh>`` (e.g. ``2x2x1``) is the k-point mesh the label was computed with.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from viglas.errors import CalculatorError, MissingDependencyError
from viglas.provenance import stable_hash
from viglas.units import EV_A3_TO_GPA

#: The install line named in every "missing" error.
DFT_INSTALL = ("apt-get install -y libxc-dev libopenblas-dev libfftw3-dev && "
               "CC=g++ CXX=g++ pip install -e '.[dft]'  (a plain 'pip install gpaw' fails: "
               "its C sources need g++)")

#: Default settings of the ``gpaw`` calculator (see the module table).
DFT_DEFAULTS: dict[str, Any] = {
    "ecut_eV": 450.0,
    "xc": "PBE",
    "kpts": None,
    "kpt_density_A": 1.2,
    "gamma": True,
    "smearing_eV": 0.05,
    "d3": "bj",
    "d3_method": None,
    "convergence": {},
    "maxiter": 300,
    "txt": None,
    "threads": 1,
}

#: Settings that do not change the numbers (left out of the label hash).
_NOT_PHYSICS = ("txt", "threads")
#: Settings that only choose the k-point mesh: the folder hash leaves them out and each
#: label's file name carries the mesh it was computed with instead, so a change of the
#: density rule keeps every label whose mesh it does not change.
_MESH_RULE = ("kpts", "kpt_density_A")


def resolve_settings(params: dict[str, Any] | None) -> dict[str, Any]:
    """``params`` merged over :data:`DFT_DEFAULTS`, validated (unknown keys refused)."""
    params = dict(params or {})
    bad = sorted(set(params) - set(DFT_DEFAULTS))
    if bad:
        raise CalculatorError("unknown parameters for calculator 'gpaw'",
                              field="calculator.params", value=bad,
                              allowed=", ".join(sorted(DFT_DEFAULTS)))
    out = {**DFT_DEFAULTS, **params}
    if float(out["ecut_eV"]) < 200:
        raise CalculatorError("plane-wave cutoff too low for these PAW setups",
                              field="calculator.params.ecut_eV", value=out["ecut_eV"],
                              allowed=">= 200 eV (converged: 450 eV and above)")
    if str(out["d3"]).lower() not in ("bj", "zero", "none"):
        raise CalculatorError("unknown D3 damping", field="calculator.params.d3",
                              value=out["d3"], allowed="bj, zero, none")
    out["d3"] = str(out["d3"]).lower()
    if out["kpts"] is not None:
        k = [int(v) for v in out["kpts"]]
        if len(k) != 3 or min(k) < 1:
            raise CalculatorError("kpts is a mesh of three positive integers",
                                  field="calculator.params.kpts", value=out["kpts"],
                                  allowed="[n1, n2, n3] or null (use kpt_density_A)")
        out["kpts"] = k
    if float(out["kpt_density_A"]) <= 0:
        raise CalculatorError("k-point density must be > 0", value=out["kpt_density_A"],
                              field="calculator.params.kpt_density_A")
    return out


def kpoint_mesh(cell: np.ndarray, settings: dict[str, Any]) -> list[int]:
    """The Monkhorst–Pack mesh used for ``cell`` (Å): explicit ``kpts`` or the density rule."""
    if settings.get("kpts") is not None:
        return [int(v) for v in settings["kpts"]]
    from ase.calculators.calculator import kptdensity2monkhorstpack

    probe = Atoms(cell=np.asarray(cell, float), pbc=True)
    return [int(k) for k in kptdensity2monkhorstpack(probe, float(settings["kpt_density_A"]),
                                                      even=None)]


def code_versions() -> dict[str, str]:
    """Versions of the codes that shape a DFT label (missing packages are left out)."""
    out: dict[str, str] = {}
    for name in ("gpaw", "gpaw-data", "dftd3"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        from gpaw.xc.libxc import LibXC  # noqa: F401
        import _gpaw  # type: ignore[import-not-found]

        out["libxc"] = str(getattr(_gpaw, "libxc_version", "unknown"))
    except Exception:  # noqa: BLE001 - only a provenance note
        pass
    return out


def _require(module: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"calculator 'gpaw' needs {what} ('{module}' is not "
                                     f"installed: {exc})", field="calculator.name",
                                     value="gpaw", hint=DFT_INSTALL) from exc


def make_gpaw(params: dict[str, Any] | None = None):
    """The ASE calculator for ``params``: GPAW PBE plane waves (+ D3 unless ``d3: none``).

    Without an explicit ``kpts`` the mesh follows each structure's cell by the density
    rule (GPAW applies ASE's ``{"density": ...}`` convention, as :func:`kpoint_mesh`).
    """
    s = resolve_settings(params)
    _require("gpaw", "GPAW")
    if s["d3"] != "none":
        _require("dftd3.ase", "the DFT-D3 library (PyPI 'dftd3')")
    from gpaw import GPAW, PW

    if s["kpts"] is not None:
        kpts = {"size": s["kpts"], "gamma": bool(s["gamma"])}
    else:
        kpts = {"density": float(s["kpt_density_A"]), "gamma": bool(s["gamma"])}
    gp = GPAW(mode=PW(float(s["ecut_eV"])), xc=str(s["xc"]), kpts=kpts,
              occupations={"name": "fermi-dirac", "width": float(s["smearing_eV"])},
              convergence=dict(s["convergence"]), maxiter=int(s["maxiter"]),
              txt=s["txt"], symmetry="off")
    if s["d3"] == "none":
        return gp
    from ase.calculators.mixing import SumCalculator
    from dftd3.ase import DFTD3

    method = str(s["d3_method"] or s["xc"])
    d3 = DFTD3(method=method, damping="d3bj" if s["d3"] == "bj" else "d3zero")
    return SumCalculator([gp, d3])


def _thread_limit(n: int):
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=int(n))
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()


@dataclass
class DFTResult:
    """One labelled configuration: energy (eV), forces (eV/Å), stress (eV/Å³, Voigt)."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray
    cpu_s: float
    kpts: list[int]
    energy_d3: float | None = None


def compute(atoms: Atoms, params: dict[str, Any] | None = None) -> DFTResult:
    """Run one single point (energy, forces, stress) on a copy of ``atoms``."""
    s = resolve_settings(params)
    work = atoms.copy()
    work.calc = make_gpaw(s)
    t0 = time.process_time()
    with _thread_limit(int(s["threads"])):
        e = float(work.get_potential_energy())
        f = np.asarray(work.get_forces(), float)
        st = np.asarray(work.get_stress(voigt=True), float)
    e_d3 = None
    calcs = getattr(work.calc, "mixer", None)
    if calcs is not None and len(getattr(calcs, "calcs", [])) == 2:
        try:
            e_d3 = float(calcs.calcs[1].results["energy"])
        except Exception:  # noqa: BLE001
            e_d3 = None
    return DFTResult(energy=e, forces=f, stress=st, cpu_s=time.process_time() - t0,
                     kpts=kpoint_mesh(atoms.cell, s), energy_d3=e_d3)


def structure_hash(atoms: Atoms) -> str:
    """Hash of numbers, positions (1e-6 Å), cell (1e-6 Å) and pbc."""
    from viglas.potentials.reference import structure_hash as _h

    return _h(atoms)


class DFTLabelStore:
    """Content-addressed store of DFT labels.

    ``<root>/<settings_hash>/<structure_hash>.extxyz.gz``; ``settings.json`` in that
    folder records the resolved settings and code versions behind the hash. Writes are
    atomic (temporary file + rename), so a killed labeller never leaves half a label.
    Claims (``<structure_hash>.claim``, holding host and PID) let several labelling
    processes share one queue; a claim whose process is gone is taken over.
    """

    def __init__(self, root: str | Path, params: dict[str, Any] | None = None, *,
                 versions: dict[str, str] | None = None) -> None:
        self.settings = resolve_settings(params)
        self.versions = dict(code_versions() if versions is None else versions)
        ident = {k: v for k, v in self.settings.items()
                 if k not in _NOT_PHYSICS and k not in _MESH_RULE}
        self.identity = {"calculator": "gpaw+dftd3" if self.settings["d3"] != "none"
                         else "gpaw", "settings": ident, "versions": self.versions}
        self.hash = stable_hash(self.identity, length=12)
        self.dir = Path(root) / self.hash
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "settings.json"
        if not meta.exists():
            tmp = meta.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.identity, indent=1, sort_keys=True))
            tmp.replace(meta)

    def mesh(self, atoms: Atoms) -> list[int]:
        """The k-point mesh these settings give ``atoms``."""
        return kpoint_mesh(np.asarray(atoms.cell), self.settings)

    def key(self, atoms: Atoms) -> str:
        """File stem: structure hash and k-point mesh."""
        return f"{structure_hash(atoms)}_k{'x'.join(str(k) for k in self.mesh(atoms))}"

    def path(self, atoms: Atoms) -> Path:
        return self.dir / f"{self.key(atoms)}.extxyz.gz"

    def has(self, atoms: Atoms) -> bool:
        return self.path(atoms).exists()

    def get(self, atoms: Atoms) -> Atoms | None:
        p = self.path(atoms)
        return read_labels(p)[0] if p.exists() else None

    def put(self, atoms: Atoms, res: DFTResult, **info: Any) -> Atoms:
        """Store ``res`` for ``atoms`` (its ``info`` kept, plus provenance); atomic."""
        if list(res.kpts) != self.mesh(atoms):
            raise CalculatorError("label computed with another k-point mesh than these "
                                  "settings give this cell", field="kpts",
                                  value=list(res.kpts), allowed=str(self.mesh(atoms)))
        out = atoms.copy()
        out.calc = None
        out.info.update(info)
        out.info.update(dft_cpu_s=round(float(res.cpu_s), 1), dft_kpts=" ".join(
            str(k) for k in res.kpts), dft_settings_hash=self.hash)
        if res.energy_d3 is not None:
            out.info["dft_energy_d3_eV"] = float(res.energy_d3)
        out.calc = SinglePointCalculator(out, energy=res.energy, forces=res.forces,
                                         stress=res.stress)
        p = self.path(atoms)
        tmp = p.parent / (p.name + f".{os.getpid()}.tmp.gz")
        from ase.io import write

        write(tmp, out, format="extxyz")
        tmp.replace(p)
        return out

    # -- claims for parallel labellers
    def claim(self, atoms: Atoms) -> bool:
        """Try to claim ``atoms`` for this process; False if labelled or claimed alive."""
        if self.has(atoms):
            return False
        c = self.dir / f"{self.key(atoms)}.claim"
        me = f"{_host()} {os.getpid()}"
        for _ in range(2):
            try:
                fd = os.open(c, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if _claim_alive(c):
                    return False
                c.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(me)
            return True
        return False

    def release(self, atoms: Atoms) -> None:
        (self.dir / f"{self.key(atoms)}.claim").unlink(missing_ok=True)

    def all(self) -> list[Atoms]:
        """Every label in this settings folder, any k-mesh (sorted by file name)."""
        out: list[Atoms] = []
        for p in sorted(self.dir.glob("*.extxyz.gz")):
            out += read_labels(p)
        return out

    def current(self) -> list[Atoms]:
        """The labels whose k-mesh is the one the current settings give their cell."""
        return [a for a in self.all() if label_mesh(a) in (None, self.mesh(a))]


def label_mesh(atoms: Atoms) -> list[int] | None:
    """The k-point mesh a label was computed with (``info["dft_kpts"]``), or None."""
    k = atoms.info.get("dft_kpts")
    if k is None:
        return None
    if isinstance(k, str):
        k = k.split()
    return [int(v) for v in np.ravel(k)]


def _host() -> str:
    import platform

    return platform.node()


def _claim_alive(path: Path) -> bool:
    try:
        host, pid = path.read_text().split()
    except (OSError, ValueError):
        return False
    if host != _host():
        return True  # another machine's claim: respect it
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def read_labels(path: str | Path) -> list[Atoms]:
    """Labelled frames of an extxyz(.gz) file (SinglePointCalculator: E, F, stress)."""
    from ase.io import read

    return list(read(str(path), index=":", format="extxyz"))


def label_atoms(frames: Iterable[Atoms], store: DFTLabelStore, *, log=print,
                stop_after_s: float | None = None) -> Iterator[Atoms]:
    """Label every frame not in ``store`` (claiming each, so parallel runs share work).

    Yields the labelled copies as they are made; frames another process holds are
    skipped (a later pass picks them up if that process died). ``stop_after_s`` stops
    before starting a new frame once that much wall time has passed.
    """
    t_start = time.time()
    frames = list(frames)
    for i, atoms in enumerate(frames):
        if stop_after_s is not None and time.time() - t_start > stop_after_s:
            log(f"stopping: {stop_after_s:.0f} s wall-time budget used")
            return
        if not store.claim(atoms):
            continue
        try:
            t0 = time.time()
            res = compute(atoms, store.settings)
            lab = store.put(atoms, res)
            where = f"[{i + 1}/{len(frames)}] " if len(frames) > 1 else ""
            log(f"{where}{atoms.info.get('label', '')} "
                f"{atoms.get_chemical_formula()} ({len(atoms)} atoms, k {res.kpts}): "
                f"E={res.energy:.3f} eV, P={-res.stress[:3].mean() * EV_A3_TO_GPA:.2f} GPa, "
                f"{time.time() - t0:.0f} s")
            yield lab
        finally:
            store.release(atoms)
