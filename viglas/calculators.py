"""Calculator registry: a config spec ``{name, params}`` -> an ASE calculator.

Names (packages are imported only when that calculator is asked for):

==========  ===============================================  =========================
name        what                                             params
==========  ===============================================  =========================
ionic       viglas classical ionic potential (numpy)         parameters ("default" or None
                                                             = dft-delta,
                                                             "dft-delta-linear",
                                                             "chgnet-ionic", "trial",
                                                             path), skin
emt         ASE EMT (Ag Al Au C Cu H N Ni O Pd Pt only)      —
chgnet      CHGNet universal potential (weights in wheel)    model ("0.3.0"), model_file,
                                                             device, threads
sevennet    SevenNet (weights in wheel)                      model ("7net-0"), model_file,
                                                             device, threads
mace-mp     MACE-MP foundation model                         model_file (local), device,
                                                             dtype, threads
mattersim   MatterSim                                        model_file (local), device
orb         Orb                                              model_file (local), model,
                                                             device
gpaw        GPAW PBE plane waves + DFT-D3(BJ) (extra dft)    ecut_eV, xc, kpts,
                                                             kpt_density_A, d3, ... (see
                                                             viglas.potentials.dft)
pkg.mod:fn  any factory returning an ASE calculator          passed as keyword arguments
            (only with ``allow_import``: see below)
==========  ===============================================  =========================

MACE, MatterSim and Orb download their weights from the internet at run time unless
given ``model_file`` (a local weights file); without one they fail on offline machines,
so viglas asks for ``model_file`` (or ``allow_download: true``).

A ``package.module:factory`` name imports and calls code named by a config, so it is
refused unless the caller opts in: ``get_calculator(spec, allow_import=True)``, the
CLI flag ``--allow-import`` or ``VIGLAS_ALLOW_IMPORT=1`` in the environment. A package
can instead register a factory under a plain name as an entry point of the group
``viglas.calculators`` (installing the package is the opt-in).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from viglas.errors import CalculatorError, MissingDependencyError

#: Elements ASE's EMT has parameters for.
EMT_ELEMENTS: tuple[str, ...] = ("Ag", "Al", "Au", "C", "Cu", "H", "N", "Ni", "O", "Pd", "Pt")

#: Built-in calculator names.
CALCULATOR_NAMES: tuple[str, ...] = ("ionic", "emt", "chgnet", "sevennet", "mace-mp",
                                     "mattersim", "orb", "gpaw")

#: Environment variable that allows ``package.module:factory`` calculator names.
ALLOW_IMPORT_ENV = "VIGLAS_ALLOW_IMPORT"
#: Entry-point group of calculator factories registered by installed packages.
ENTRY_POINT_GROUP = "viglas.calculators"


def import_allowed(allow_import: bool | None = None) -> bool:
    """True when ``package.module:factory`` names may be imported: ``allow_import`` or
    ``$VIGLAS_ALLOW_IMPORT`` set to 1/true/yes."""
    if allow_import:
        return True
    return os.environ.get(ALLOW_IMPORT_ENV, "").strip().lower() in ("1", "true", "yes")


def check_import_allowed(name: str, allow_import: bool | None = None,
                         field: str = "calculator.name") -> None:
    """Raise :class:`CalculatorError` if ``name`` is an import path not opted into."""
    if ":" in str(name) and not import_allowed(allow_import):
        raise CalculatorError(
            "a 'package.module:factory' calculator imports and runs code named by the "
            "config; it needs an explicit opt-in", field=field, value=str(name),
            allowed="a registered calculator name, or an import path with --allow-import",
            hint=f"if you trust this config, pass --allow-import (or set {ALLOW_IMPORT_ENV}=1),"
                 f" or register the factory as a '{ENTRY_POINT_GROUP}' entry point")


def registered_calculators() -> dict[str, Any]:
    """Calculator factories registered by installed packages (entry-point group
    ``viglas.calculators``): name -> entry point."""
    from importlib.metadata import entry_points

    try:
        return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    except Exception:  # noqa: BLE001 - broken metadata of some package
        return {}


_ML_HINT = ("pip install 'viglas[ml]' (install torch==2.13.0, the CPU build, first or in "
            "the same command)")
_INSTALL = {
    "chgnet": _ML_HINT,
    "sevennet": _ML_HINT,
    "mace-mp": "pip install mace-torch (not in the same environment as sevennet>=0.12: "
               "e3nn pins clash)",
    "mattersim": "pip install mattersim",
    "orb": "pip install orb-models",
}


class CalculatorSpec(BaseModel):
    """Which calculator to build: ``name`` (see the table above) and its ``params``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="ionic, emt, chgnet, sevennet, mace-mp, mattersim, orb "
                                  "or 'package.module:factory'")
    params: dict[str, Any] = Field(default_factory=dict)


def as_spec(spec: CalculatorSpec | dict | str) -> CalculatorSpec:
    """A :class:`CalculatorSpec` from a spec, a name or a ``{"name", "params"}`` dict."""
    if isinstance(spec, CalculatorSpec):
        return spec
    if isinstance(spec, str):
        return CalculatorSpec(name=spec)
    if isinstance(spec, dict):
        unknown = set(spec) - {"name", "params"}
        if "name" not in spec or unknown:
            raise CalculatorError("a calculator spec is a mapping {name, params}",
                                  field="calculator", value=spec,
                                  allowed="{name: ..., params: {...}}")
        return CalculatorSpec(name=str(spec["name"]), params=dict(spec.get("params") or {}))
    raise CalculatorError("a calculator spec is a name or a mapping {name, params}",
                          field="calculator", value=repr(spec))


def _normal_name(name: str) -> str:
    n = name.strip()
    if ":" in n:
        return n
    n = n.lower().replace("_", "-")
    return {"mace": "mace-mp", "7net": "sevennet", "sevenn": "sevennet",
            "orb-models": "orb", "dft": "gpaw"}.get(n, n)


def _import(module: str, calc: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"calculator '{calc}' needs the package that provides "
                                     f"'{module}', which is not installed ({exc})",
                                     field="calculator.name", value=calc,
                                     hint=_INSTALL.get(calc, f"pip install {module.split('.')[0]}")
                                     ) from exc


def _check_params(name: str, params: dict, allowed: set[str]) -> None:
    bad = sorted(set(params) - allowed)
    if bad:
        raise CalculatorError(f"unknown parameters for calculator '{name}'",
                              field="calculator.params", value=bad,
                              allowed=", ".join(sorted(allowed)) or "none")


def _device(params: dict) -> str:
    dev = str(params.get("device", "cpu"))
    if dev not in ("cpu", "cuda", "mps") and not dev.startswith("cuda:"):
        raise CalculatorError("unknown device", field="calculator.params.device", value=dev,
                              allowed="cpu, cuda, cuda:N, mps")
    return dev


def _threads(params: dict) -> None:
    if params.get("threads") is not None:
        import torch

        torch.set_num_threads(int(params["threads"]))


def _model_file(name: str, params: dict, required: bool) -> str | None:
    mf = params.get("model_file")
    if mf is None:
        if required and not params.get("allow_download", False):
            raise CalculatorError(f"calculator '{name}' downloads its weights from the "
                                  "internet unless given a local model file",
                                  field="calculator.params.model_file", value=None,
                                  allowed="a path to a local weights file",
                                  hint="download the model once where there is internet and "
                                       "pass model_file: PATH, or set allow_download: true")
        return None
    p = Path(mf).expanduser()
    if not p.exists():
        raise CalculatorError("model file not found", field="calculator.params.model_file",
                              value=str(p))
    return str(p)


# ------------------------------------------------------------------- builders
def _ionic(params: dict):
    _check_params("ionic", params, {"parameters", "skin"})
    from viglas.potentials.delta import make_potential

    return make_potential(params.get("parameters"), skin=float(params.get("skin", 1.0)))


def _emt(params: dict):
    _check_params("emt", params, set())
    from ase.calculators.emt import EMT

    return EMT()


def _chgnet(params: dict):
    _check_params("chgnet", params, {"model", "model_file", "device", "threads"})
    dev = _device(params)
    _import("chgnet", "chgnet")
    _threads(params)
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    mf = _model_file("chgnet", params, required=False)
    if mf:
        model = CHGNet.from_file(mf)
    else:
        model = CHGNet.load(model_name=str(params.get("model", "0.3.0")), use_device=dev,
                            verbose=False)
    return CHGNetCalculator(model=model, use_device=dev)


def _sevennet(params: dict):
    _check_params("sevennet", params, {"model", "model_file", "device", "threads", "modal"})
    dev = _device(params)
    _import("sevenn", "sevennet")
    _threads(params)
    from sevenn.calculator import SevenNetCalculator

    mf = _model_file("sevennet", params, required=False)
    kw = {"modal": params["modal"]} if params.get("modal") else {}
    return SevenNetCalculator(model=mf or str(params.get("model", "7net-0")), device=dev, **kw)


def _mace(params: dict):
    _check_params("mace-mp", params, {"model", "model_file", "device", "threads", "dtype",
                                      "allow_download"})
    dev = _device(params)
    mf = _model_file("mace-mp", params, required=True)
    mod = _import("mace.calculators", "mace-mp")
    _threads(params)
    dtype = str(params.get("dtype", "float64"))
    if mf:
        return mod.MACECalculator(model_paths=mf, device=dev, default_dtype=dtype)
    return mod.mace_mp(model=str(params.get("model", "medium")), device=dev, default_dtype=dtype)


def _mattersim(params: dict):
    _check_params("mattersim", params, {"model_file", "device", "threads", "allow_download",
                                        "model"})
    dev = _device(params)
    mf = _model_file("mattersim", params, required=True)
    mod = _import("mattersim.forcefield", "mattersim")
    _threads(params)
    return mod.MatterSimCalculator(load_path=mf or str(params.get("model",
                                   "MatterSim-v1.0.0-1M.pth")), device=dev)


def _orb(params: dict):
    _check_params("orb", params, {"model", "model_file", "device", "threads", "allow_download"})
    dev = _device(params)
    mf = _model_file("orb", params, required=True)
    pretrained = _import("orb_models.forcefield.pretrained", "orb")
    calc_mod = _import("orb_models.forcefield.calculator", "orb")
    _threads(params)
    name = str(params.get("model", "orb_v3_conservative_inf_omat"))
    factory = getattr(pretrained, name, None)
    if factory is None:
        raise CalculatorError("unknown Orb model", field="calculator.params.model", value=name)
    model = factory(weights_path=mf, device=dev) if mf else factory(device=dev)
    return calc_mod.ORBCalculator(model, device=dev)


def _gpaw(params: dict):
    from viglas.potentials.dft import make_gpaw

    return make_gpaw(params)


def _factory(path: str, params: dict):
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise CalculatorError("custom calculators are given as 'package.module:factory'",
                              field="calculator.name", value=path)
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"cannot import module '{module}' ({exc})",
                                     field="calculator.name", value=path,
                                     hint=f"pip install the package that provides {module}"
                                     ) from exc
    fn = getattr(mod, attr, None)
    if fn is None or not callable(fn):
        raise CalculatorError(f"module '{module}' has no callable '{attr}'",
                              field="calculator.name", value=path)
    calc = fn(**params)
    if not hasattr(calc, "get_potential_energy") and not hasattr(calc, "calculate"):
        raise CalculatorError("factory did not return an ASE calculator",
                              field="calculator.name", value=path)
    return calc


_BUILDERS = {"ionic": _ionic, "emt": _emt, "chgnet": _chgnet, "sevennet": _sevennet,
             "mace-mp": _mace, "mattersim": _mattersim, "orb": _orb, "gpaw": _gpaw}


def get_calculator(spec: CalculatorSpec | dict | str, *, allow_import: bool | None = None):
    """Build the ASE calculator a spec names.

    ``spec`` is a :class:`CalculatorSpec`, a dict ``{"name": ..., "params": {...}}`` or a
    bare name. Raises :class:`CalculatorError` for an unknown name or parameter and
    :class:`MissingDependencyError` (with the pip command) for a missing package.
    ``params.device`` (``cpu``/``cuda``) is passed to ML potentials. A
    ``package.module:factory`` name is refused unless ``allow_import`` (or
    ``$VIGLAS_ALLOW_IMPORT``) allows it; names registered in the ``viglas.calculators``
    entry-point group are always allowed.
    """
    s = as_spec(spec)
    name = _normal_name(s.name)
    if ":" in name:
        check_import_allowed(name, allow_import)
        return _factory(name, s.params)
    builder = _BUILDERS.get(name)
    if builder is None and s.name in registered_calculators():
        ep = registered_calculators()[s.name]
        return _factory(ep.value, s.params)
    if builder is None:
        raise CalculatorError("unknown calculator", field="calculator.name", value=s.name,
                              allowed=", ".join(CALCULATOR_NAMES) + ", package.module:factory")
    return builder(dict(s.params))


def supported_elements(spec: CalculatorSpec | dict | str) -> set[str] | None:
    """Elements the calculator can handle, or None when it is not restricted/known."""
    s = as_spec(spec)
    name = _normal_name(s.name)
    if name == "emt":
        try:
            from ase.calculators.emt import parameters

            return set(parameters)
        except ImportError:  # pragma: no cover
            return set(EMT_ELEMENTS)
    if name == "ionic":
        from viglas.potentials.delta import potential_elements

        return potential_elements(s.params.get("parameters"))
    if name in _BUILDERS or ":" in name or s.name in registered_calculators():
        return None
    raise CalculatorError("unknown calculator", field="calculator.name", value=s.name,
                          allowed=", ".join(CALCULATOR_NAMES) + ", package.module:factory")


def check_elements(spec: CalculatorSpec | dict | str, symbols) -> None:
    """Raise :class:`CalculatorError` up front if the calculator cannot treat ``symbols``.

    ``symbols`` is any iterable of element symbols (or an :class:`ase.Atoms`).
    """
    if hasattr(symbols, "get_chemical_symbols"):
        symbols = symbols.get_chemical_symbols()
    known = supported_elements(spec)
    if known is None:
        return
    missing = sorted(set(symbols) - known)
    if missing:
        name = _normal_name(as_spec(spec).name)
        raise CalculatorError(f"calculator '{name}' has no parameters for "
                              f"{', '.join(missing)}", field="calculator.name", value=name,
                              allowed=f"structures made of {' '.join(sorted(known))}",
                              hint="use 'ionic' or an ML potential such as 'chgnet'"
                              if name == "emt" else None)
