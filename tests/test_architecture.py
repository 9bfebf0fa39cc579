"""Import directions (docs/architecture.md): the layers below the workflows never
import jobflow, the workflows or the CLI — checked statically (every import statement,
also the lazy ones inside functions) and at run time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: folder -> (package name, forbidden import prefixes)
_NO_JOBS = ("jobflow", "jobflow_remote", "viglas.workflows", "viglas.cli", "viglas.commands")
LAYERS = {
    "analysis": ("viglas.analysis", _NO_JOBS),
    "structures": ("viglas.structures", _NO_JOBS),
    "viglas/md": ("viglas.md", _NO_JOBS),
    "viglas/potentials": ("viglas.potentials", _NO_JOBS),
}
#: core modules directly in viglas/ (everything but the CLI)
CORE_EXCLUDE = {"cli.py", "__main__.py"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def _violations(files, forbidden) -> list[str]:
    bad = []
    for f in files:
        for line, mod in _imports(f):
            if any(mod == p or mod.startswith(p + ".") for p in forbidden):
                name = f.relative_to(ROOT) if f.is_relative_to(ROOT) else f.name
                bad.append(f"{name}:{line} imports {mod}")
    return bad


@pytest.mark.parametrize("folder", sorted(LAYERS))
def test_lower_layers_never_import_jobs_or_cli(folder):
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, folder
    assert _violations(files, LAYERS[folder][1]) == []


def test_core_never_imports_workflows_or_cli():
    files = [f for f in sorted((ROOT / "viglas").glob("*.py")) if f.name not in CORE_EXCLUDE]
    assert _violations(files, _NO_JOBS) == []


def test_the_checker_sees_lazy_imports(tmp_path):
    bad = tmp_path / "mod.py"
    bad.write_text("def f():\n    from viglas.workflows.md import run_md\n    import jobflow\n")
    assert _violations([bad], _NO_JOBS) == ["mod.py:2 imports viglas.workflows.md",
                                             "mod.py:3 imports jobflow"]


def test_importing_the_lower_layers_loads_no_jobflow():
    code = ("import sys; import viglas.analysis, viglas.structures, viglas.potentials, "
            "viglas.md.adaptive, viglas.md.engine, viglas.md.quench, viglas.md.walltime, "
            "viglas.md.observers, viglas.md.checkpoint, viglas.potentials.dft, viglas.potentials.dft_fit, "
            "viglas.potentials.ionic_kernels, viglas.potentials.ionic_lammps, "
            "viglas.potentials.fit, viglas.potentials.fit_start, viglas.potentials.fit_data, "
            "viglas.potentials.fit_md, viglas.potentials.validate, viglas.analysis.export, "
            "viglas.analysis.export_schema, viglas.analysis.export_csv, "
            "viglas.analysis.export_pybamm, viglas.analysis.pybamm_params, "
            "viglas.trajectory, viglas.jit, viglas.config, viglas.calculators; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('jobflow', "
            "'jobflow_remote') or m.startswith(('viglas.workflows', 'viglas.cli', "
            "'viglas.commands'))); print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def _module_graph(folder: str, package: str) -> dict[str, set[str]]:
    """Module -> modules of the same package it imports (absolute and relative,
    also lazy imports; the package __init__ is left out: it re-exports everything)."""
    graph: dict[str, set[str]] = {}
    files = {f.stem: f for f in (ROOT / folder).glob("*.py") if f.stem != "__init__"}
    for name, f in files.items():
        deps = set()
        for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                if node.level == 1:
                    mod = f"{package}.{mod}" if mod else package
                names = [mod] + [f"{mod}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for m in names:
                if m.startswith(package + ".") and m.split(".")[2] in files:
                    deps.add(m.split(".")[2])
        graph[name] = deps - {name}
    return graph


@pytest.mark.parametrize("folder,package", [("analysis", "viglas.analysis"),
                                            ("viglas/md", "viglas.md"),
                                            ("viglas/potentials", "viglas.potentials"),
                                            ("structures", "viglas.structures"),
                                            ("workflows", "viglas.workflows")])
def test_no_import_cycles_between_modules(folder, package):
    graph = _module_graph(folder, package)
    cycles = []

    def visit(node, path):
        for nxt in sorted(graph[node]):
            if nxt in path:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif len(path) < len(graph):
                visit(nxt, path + [nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert cycles == []
