"""Provenance recorded in every output document: versions, config hash, host."""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

_PACKAGES = ("viglas", "numpy", "scipy", "ase", "pymatgen", "jobflow", "maggma", "matscipy",
             "h5py", "numba", "pydantic", "typer", "click", "matplotlib", "torch", "chgnet",
             "sevenn", "gpaw")


def git_state() -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the viglas source when it is a git checkout (an
    editable install), else None. ``dirty``: tracked files differ from the commit."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                 "--untracked-files=no"], capture_output=True, text=True,
                                timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed versions of the packages that shape viglas numbers."""
    out: dict[str, str] = {}
    for name in (*_PACKAGES, *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def stable_hash(obj: Any, length: int = 16) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (sorted keys), first ``length`` hex digits."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def model_identity(model: Any) -> dict[str, Any]:
    """JSON dict of a pydantic model for hashing: its own ``identity_dict()`` when it has
    one (e.g. IonicParameters leaves out optional blocks it does not use, so old hashes
    stay valid), else ``model_dump(mode="json")``."""
    if hasattr(model, "identity_dict"):
        return model.identity_dict()
    return model.model_dump(mode="json")


def provenance(config: Any = None, **extra: Any) -> dict[str, Any]:
    """A provenance block: versions, python, host, UTC time, config hash and ``extra``."""
    out: dict[str, Any] = {
        "versions": package_versions(),
        "git": git_state(),
        "python": platform.python_version(),
        "host": platform.node(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if config is not None:
        out["config_hash"] = stable_hash(config)
    out.update(extra)
    return out
