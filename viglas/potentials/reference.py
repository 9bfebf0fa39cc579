"""Reference configurations for force matching, labelled by any registry calculator.

A *reference set* is a list of :class:`ase.Atoms` whose ``calc`` is a
:class:`~ase.calculators.singlepoint.SinglePointCalculator` holding the reference
energy (eV), forces (eV/Å) and stress (eV/Å³, ASE sign convention), plus metadata in
``atoms.info``: ``composition`` (formula), ``kind`` (relax / md / strain / rattle /
iter), ``t_K`` (MD temperature, 0 for relaxation), ``split`` (``train`` or
``valid``), ``seed`` and ``round`` (0 = initial sampling, n = n-th refit iteration).

Labels are cached on disk: one extxyz file per configuration under
``<cache>/<spec_hash>/<structure_hash>.extxyz`` where ``spec_hash`` hashes the
calculator spec (name + params) and ``structure_hash`` the numbers, positions
(rounded to 1e-6 Å), cell and pbc. A rerun or a refit with the same reference never
calls the reference calculator twice for the same structure.

Sampling per composition (:func:`sample_composition`): a random cell at an estimated
density with pair-specific minimum distances (or ``viglas.structures.build_glass`` when
available), relaxed with the reference potential (random cells otherwise heat to
thousands of kelvin within a few steps), then short Langevin MD at several
temperatures, plus small random strains (for the stress) and rattled copies.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from viglas.chemistry import ANIONS, CATIONS
from viglas.errors import CompositionError, ConfigError
from viglas.files import atomic_write_text
from viglas.provenance import stable_hash

#: Elements the plain ionic sets (``chgnet-ionic``) cover.
ELEMENTS: tuple[str, ...] = ("Li", "Na", "Al", "Ga", "In", "B", "Cl", "O")

#: Compositions sampled for the shipped ``chgnet-ionic`` set. Together they contain every
#: pair among :data:`ELEMENTS` (mixed-alkali / mixed-former cells give the rest).
DEFAULT_COMPOSITIONS: tuple[str, ...] = (
    "LiAlCl4",
    "LiAlCl2.5O0.75",
    "NaAlCl2.5O0.75",
    "LiGaCl2.5O0.75",
    "LiInCl2.5O0.75",
    "LiBCl2.5O0.75",
    "NaAlCl4",
    "Li0.5Na0.5Al0.5Ga0.5Cl3O0.5",
    "Li0.5Na0.5In0.5B0.5Cl2.5O0.75",
    "LiAl0.5Ga0.5Cl2O",
)

#: Default reference calculator spec.
CHGNET_SPEC: dict[str, Any] = {"name": "chgnet", "params": {"model": "0.3.0"}}


# Rough ionic volumes (Å^3 per ion) for a first density guess when the structures
# module is not used: fitted by eye to LiCl, NaCl, AlCl3 and Al2O3 molar volumes.
_ION_VOLUME_A3 = {"Li": 2.0, "Na": 6.0, "Al": 2.0, "Ga": 2.5, "In": 4.0, "B": 1.0,
                  "Cl": 33.0, "O": 16.0}
_CATIONS = frozenset(CATIONS)
_ANIONS = frozenset(ANIONS)


def parse_formula(formula: str) -> dict[str, float]:
    """Element -> amount per formula unit for a formula such as ``LiAlCl2.5O0.75``.

    Parsing and the charge-balance check are those of
    :meth:`viglas.structures.GlassComposition.from_formula`; elements with zero amount
    are left out.
    """
    from viglas.structures import GlassComposition

    counts = GlassComposition.from_formula(formula).counts_per_fu()
    return {el: float(v) for el, v in counts.items() if v > 0}


def _formula_counts(formula: str, n_atoms: int) -> dict[str, int]:
    """Integer counts for about ``n_atoms`` atoms (whole formula units scaled to integers)."""
    per_fu = parse_formula(formula)
    # smallest multiplier making every count integer (amounts are multiples of 0.05)
    for mult in range(1, 41):
        scaled = {k: v * mult for k, v in per_fu.items()}
        if all(abs(v - round(v)) < 1e-6 for v in scaled.values()):
            break
    else:  # pragma: no cover - formulas with odd fractions
        raise CompositionError("formula amounts need a multiplier above 40",
                               field="composition", value=formula)
    block = {k: int(round(v)) for k, v in scaled.items()}
    n_block = sum(block.values())
    reps = max(1, int(round(n_atoms / n_block)))
    return {k: v * reps for k, v in block.items()}


def _min_distance(a: str, b: str) -> float:
    """Placement minimum distance in Å for a pair of elements in :func:`random_cell`.

    A rejection threshold of random sequential placement, not the minimum distance of
    built glass models (:func:`viglas.structures.geometry.default_min_distance`:
    0.85 x / 0.80 x sums of ``SHANNON_RADII``, 2.40 Å between cations, used by the
    builders and to judge finished structures). Hand-set numbers: cation–cation 2.50;
    Cl–Cl 2.75, Cl–O and O–O 2.40; cation–O 1.40 (B), 1.70 (Al), 1.75 (Ga), 1.80 (Li),
    1.95 (In), 2.10 (Na) and cation–Cl 0.35 more. They are 0.77–1.02 x the contact
    distances of :data:`viglas.chemistry.CONTACT_A` (0.875–1.02 x for cation–anion
    pairs), so no single factor on that table (or on the Shannon radii) gives them;
    they stay as they are because :func:`random_cell` must regenerate the same cells
    for a seed (the fit tests' synthetic frames, cached ``builder="random"`` samples).
    Which elements are cations and anions comes from :mod:`viglas.chemistry`.
    """
    if a in _CATIONS and b in _CATIONS:
        return 2.5
    if a in _ANIONS and b in _ANIONS:
        return 2.4 if "O" in (a, b) else 2.75
    cat = a if a in _CATIONS else b
    an = b if cat == a else a
    base = {"B": 1.4, "Al": 1.7, "Ga": 1.75, "In": 1.95, "Li": 1.8, "Na": 2.1}[cat]
    return base if an == "O" else base + 0.35


def _place(symbols: list[str], length: float, rng: np.random.Generator,
           max_tries: int) -> tuple[list[str], list[np.ndarray]] | None:
    """Random sequential placement in a cube of edge ``length`` Å (None if jammed)."""
    pos: list[np.ndarray] = []
    placed: list[str] = []
    for s in symbols:
        for _ in range(max_tries):
            trial = rng.random(3) * length
            if pos:
                d = np.asarray(pos) - trial
                d -= length * np.round(d / length)
                r = np.linalg.norm(d, axis=1)
                dmin = np.array([_min_distance(s, p) for p in placed])
                if np.any(r < dmin):
                    continue
            pos.append(trial)
            placed.append(s)
            break
        else:
            return None
    return placed, pos


def random_cell(formula: str, n_atoms: int = 64, *, density_g_cm3: float | None = None,
                seed: int = 0, max_tries: int = 5000) -> Atoms:
    """A periodic cubic cell of ``formula`` with atoms placed at random.

    Anions are placed first, then cations, each at least the pair placement distance
    (1.4–2.75 Å, see :func:`_min_distance`) from all atoms already placed (minimum
    image). The volume comes from ``density_g_cm3`` or from additive ionic volumes
    (expanded in 5% steps, at most 7 times, while random placement jams).
    The cell is *not* relaxed: relax it with the reference potential before MD.
    """
    from ase.data import atomic_masses, atomic_numbers

    from viglas.errors import StructureError
    from viglas.units import volume_a3_for_density

    counts = _formula_counts(formula, n_atoms)
    symbols: list[str] = []
    for el in sorted(counts, key=lambda e: (e in _CATIONS, e)):
        symbols += [el] * counts[el]
    mass = sum(atomic_masses[atomic_numbers[s]] for s in symbols)
    if density_g_cm3 is None:
        volume = sum(_ION_VOLUME_A3[s] for s in symbols)
    else:
        volume = volume_a3_for_density(mass, density_g_cm3)
    rng = np.random.default_rng(seed)
    for attempt in range(8):
        length = (volume * 1.05**attempt) ** (1.0 / 3.0)
        placed_pos = _place(symbols, length, rng, max_tries)
        if placed_pos is not None:
            break
        if density_g_cm3 is not None:  # an explicit density is not changed
            break
    if placed_pos is None:
        raise StructureError("could not place atoms at this density",
                             field="density_g_cm3", value=density_g_cm3,
                             allowed="a lower density or fewer atoms")
    placed, pos = placed_pos
    return Atoms(symbols=placed, positions=np.asarray(pos), cell=[length] * 3, pbc=True)


# ---------------------------------------------------------------------------------
# calculators and the label cache


def spec_dict(spec: Any) -> dict[str, Any]:
    """A calculator spec as a plain ``{"name", "params"}`` dict (accepts str/dict/model)."""
    if isinstance(spec, str):
        return {"name": spec, "params": {}}
    if hasattr(spec, "model_dump"):
        spec = spec.model_dump()
    if not isinstance(spec, dict) or "name" not in spec:
        raise ConfigError("calculator spec must have a name", field="reference",
                          value=spec, allowed="a name or {name: ..., params: {...}}")
    return {"name": str(spec["name"]), "params": dict(spec.get("params") or {})}


def make_calculator(spec: Any, *, num_threads: int | None = 1):
    """The ASE calculator for ``spec`` from the viglas calculator registry.

    ``num_threads`` sets ``torch.set_num_threads`` first (ML calculators on a shared
    CPU run faster with 1 thread than with 2 under load).
    """
    spec = spec_dict(spec)
    if num_threads is not None:
        try:
            import torch

            torch.set_num_threads(int(num_threads))
        except ImportError:
            pass
    from viglas.calculators import get_calculator

    return get_calculator(spec)


def structure_hash(atoms: Atoms) -> str:
    """Hash of numbers, positions (1e-6 Å), cell (1e-6 Å) and pbc of ``atoms``."""
    key = {
        "numbers": atoms.numbers.tolist(),
        "positions": np.round(atoms.positions, 6).tolist(),
        "cell": np.round(np.asarray(atoms.cell), 6).tolist(),
        "pbc": [bool(p) for p in atoms.pbc],
    }
    return stable_hash(key, length=20)


class LabelCache:
    """On-disk cache of reference labels: ``<root>/<spec_hash>/<structure_hash>.extxyz``.

    Each file holds one configuration with energy (eV), forces (eV/Å), stress
    (eV/Å³, Voigt order in the extxyz header) and the metadata in ``atoms.info``.
    """

    def __init__(self, root: str | Path, spec: Any) -> None:
        self.spec = spec_dict(spec)
        self.spec_hash = stable_hash(self.spec, length=12)
        self.dir = Path(root) / self.spec_hash
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "spec.json"
        if not meta.exists():
            atomic_write_text(meta, json.dumps(self.spec, indent=1))

    def path(self, atoms: Atoms) -> Path:
        """Cache file of ``atoms``."""
        return self.dir / f"{structure_hash(atoms)}.extxyz"

    def get(self, atoms: Atoms) -> Atoms | None:
        """The labelled copy of ``atoms`` or None if it is not cached."""
        p = self.path(atoms)
        if not p.exists():
            return None
        from ase.io import read

        return read(p, format="extxyz")

    def put(self, atoms: Atoms, energy: float, forces: np.ndarray,
            stress: np.ndarray | None) -> Atoms:
        """Store labels for ``atoms``; returns the labelled copy (SinglePointCalculator)."""
        from ase.io import write

        out = atoms.copy()
        out.calc = None
        results: dict[str, Any] = {"energy": float(energy),
                                   "forces": np.asarray(forces, float)}
        if stress is not None:
            s = np.asarray(stress, float)
            if s.shape == (3, 3):
                s = s[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
            results["stress"] = s
        out.calc = SinglePointCalculator(out, **results)
        buf = io.StringIO()
        write(buf, out, format="extxyz")
        atomic_write_text(self.path(atoms), buf.getvalue())
        return out

    def all(self) -> list[Atoms]:
        """Every configuration in the cache (sorted by file name)."""
        from ase.io import read

        return [read(p, format="extxyz") for p in sorted(self.dir.glob("*.extxyz"))]


def label(structures: Iterable[Atoms], spec: Any, cache_dir: str | Path, *,
          calculator=None, num_threads: int | None = 1,
          progress: bool = True) -> list[Atoms]:
    """Label ``structures`` with the reference ``spec``, reading/writing the cache.

    Returns copies with a SinglePointCalculator (energy eV, forces eV/Å, stress eV/Å³)
    and the input ``info`` preserved. The calculator is built only if a structure is
    missing from the cache.
    """
    cache = LabelCache(cache_dir, spec)
    out: list[Atoms] = []
    structures = list(structures)
    for i, atoms in enumerate(structures):
        hit = cache.get(atoms)
        if hit is None:
            if calculator is None:
                calculator = make_calculator(spec, num_threads=num_threads)
            work = atoms.copy()
            work.calc = calculator
            e = work.get_potential_energy()
            f = work.get_forces()
            try:
                s = work.get_stress()
            except Exception:  # calculators without stress
                s = None
            hit = cache.put(atoms, e, f, s)
            if progress:
                print(f"  labelled {i + 1}/{len(structures)} {atoms.get_chemical_formula()}",
                      flush=True)
        hit.info.update(atoms.info)
        out.append(hit)
    return out


# ---------------------------------------------------------------------------------
# sampling


def _snapshot(cache: LabelCache, atoms: Atoms, **info: Any) -> Atoms:
    """Store the current calculator results of ``atoms`` (already computed) as a label."""
    calc = atoms.calc
    e = atoms.get_potential_energy()
    f = atoms.get_forces()
    s = calc.results.get("stress") if calc is not None else None
    if s is None:
        s = atoms.get_stress()
    frame = atoms.copy()
    frame.info.update(info)
    lab = cache.put(frame, e, f, s)
    lab.info.update(info)
    return lab


def strained_copy(atoms: Atoms, max_strain: float, rng: np.random.Generator) -> Atoms:
    """``atoms`` under a random symmetric strain with components in ±max_strain."""
    eps = rng.uniform(-max_strain, max_strain, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    out = atoms.copy()
    out.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + eps), scale_atoms=True)
    return out


def sample_composition(formula: str, spec: Any, cache_dir: str | Path, *,
                       n_atoms: int = 64, seed: int = 0,
                       temperatures_K: Sequence[float] = (1500.0, 1000.0, 600.0),
                       valid_temperature_K: float | None = 1000.0,
                       md_steps: Sequence[int] = (80, 50, 50), save_every: int = 5,
                       timestep_fs: float = 2.0, relax_steps: int = 30,
                       builder: str = "substitution",
                       n_strain: int = 4, max_strain: float = 0.03,
                       n_rattle: int = 4, rattle_A: float = 0.08,
                       num_threads: int | None = 1, calculator=None,
                       start: Atoms | None = None,
                       log: Callable[[str], None] = print) -> list[Atoms]:
    """Generate and label reference configurations of one composition.

    Steps: a start model of ``n_atoms`` atoms from
    :func:`viglas.structures.build_glass` (``builder`` = ``"substitution"``: parent-salt
    prototype with O bridging two formers, or ``"packing"``), a random cell
    (``builder="random"``, :func:`random_cell`) or ``start``; FIRE relaxation with
    the reference (``relax_steps`` at most, every 10th step kept as ``kind=relax``);
    Langevin NVT at each of ``temperatures_K`` for ``md_steps`` steps of
    ``timestep_fs`` fs (a frame every ``save_every`` steps after the first
    ``save_every``); then ``n_strain`` strained (±``max_strain``) and ``n_rattle``
    rattled (Gaussian, ``rattle_A`` Å) copies of the last frame. Frames of the MD at
    ``valid_temperature_K`` are marked ``split=valid`` (held out), the rest ``train``.

    A marker file ``<cache>/<spec_hash>/done_<formula>_<seed>.json`` lists the
    structure hashes so a rerun reads everything from the cache.
    """
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.optimize import FIRE

    cache = LabelCache(cache_dir, spec)
    tag = builder if start is None else "given"
    marker = cache.dir / f"done_{formula}_{seed}_{n_atoms}_{tag}.json"
    if marker.exists():
        names = json.loads(marker.read_text())
        out = []
        from ase.io import read

        for name, info in names:
            a = read(cache.dir / f"{name}.extxyz", format="extxyz")
            a.info.update(info)
            out.append(a)
        return out

    if calculator is None:
        calculator = make_calculator(spec, num_threads=num_threads)
    rng = np.random.default_rng(seed)
    if start is None and builder == "random":
        atoms = random_cell(formula, n_atoms, seed=seed)
    elif start is None:
        from viglas.structures import build_glass

        atoms = build_glass(formula, n_atoms, method=builder, seed=seed)
        atoms.info = {}
    else:
        atoms = start.copy()
    atoms.calc = calculator
    frames: list[Atoms] = []
    base = {"composition": formula, "seed": seed, "round": 0}
    t0 = time.time()

    opt = FIRE(atoms, logfile=None, maxstep=0.15)
    step = {"n": 0}

    def keep_relax() -> None:
        if step["n"] % 10 == 0:
            frames.append(_snapshot(cache, atoms, kind="relax", t_K=0.0, split="train",
                                    **base))
        step["n"] += 1

    opt.attach(keep_relax, interval=1)
    opt.run(fmax=0.1, steps=relax_steps)
    log(f"{formula}: relaxed {step['n']} steps, {time.time() - t0:.0f} s, "
        f"E={atoms.get_potential_energy():.2f} eV")

    MaxwellBoltzmannDistribution(atoms, temperature_K=temperatures_K[0],
                                 rng=np.random.default_rng(seed + 1))
    for t_K, n_steps in zip(temperatures_K, md_steps):
        split = "valid" if valid_temperature_K is not None and abs(
            t_K - valid_temperature_K) < 1e-6 else "train"
        dyn = Langevin(atoms, timestep=timestep_fs * units.fs, temperature_K=t_K,
                       friction=0.02 / units.fs, fixcm=False,  # COM drift: harmless here
                       rng=np.random.default_rng(seed + int(t_K)))
        counter = {"n": 0}

        def keep_md(t_K=t_K, split=split, counter=counter) -> None:
            counter["n"] += 1
            if counter["n"] > save_every and counter["n"] % save_every == 0:
                frames.append(_snapshot(cache, atoms, kind="md", t_K=float(t_K),
                                        split=split, **base))

        dyn.attach(keep_md, interval=1)
        dyn.run(n_steps)
        log(f"{formula}: MD {t_K:.0f} K {n_steps} steps done, T_inst="
            f"{atoms.get_temperature():.0f} K, {time.time() - t0:.0f} s")

    last = atoms.copy()
    extra = []
    for i in range(n_strain):
        s = strained_copy(last, max_strain, rng)
        s.info.update(kind="strain", t_K=600.0, split="train", **base)
        extra.append(s)
    for i in range(n_rattle):
        r = last.copy()
        r.positions += rng.normal(0.0, rattle_A, size=r.positions.shape)
        r.info.update(kind="rattle", t_K=600.0, split="train", **base)
        extra.append(r)
    frames += label(extra, spec, cache_dir, calculator=calculator, progress=False)
    log(f"{formula}: {len(frames)} labelled frames, {time.time() - t0:.0f} s")
    keep_keys = ("composition", "seed", "round", "kind", "t_K", "split")
    atomic_write_text(marker, json.dumps([[structure_hash(a), {k: a.info[k] for k in keep_keys}]
                                          for a in frames]))
    return frames
