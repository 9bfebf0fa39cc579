"""``viglas build``: write a start model of a glass composition to a structure file."""

from __future__ import annotations

from pathlib import Path

import typer


def build(
    composition: str = typer.Argument(
        ..., metavar="COMPOSITION",
        help="Glass formula A M Cl(4-2x) O(x), e.g. LiAlCl2.5O0.75 (LACO), NaGaCl3O0.5, "
             "LiAl0.5Ga0.5Cl4, Li0.5Na0.5AlCl4. A: Li, Na; M: Al, Ga, In, B; 0 <= x < 2."),
    atoms: int = typer.Option(
        ..., "--atoms", "-n",
        help="Target number of atoms. The nearest size with whole numbers of every element "
             "is used and reported (x is never changed)."),
    output: Path = typer.Option(
        ..., "--output", "-o",
        help="Output file; the format follows the name: .cif, .xyz/.extxyz, POSCAR/.vasp."),
    method: str = typer.Option(
        "substitution", "--method", "-m",
        help="substitution: start from the LiAlCl4/NaAlCl4 crystal, O bridging two M. "
             "packing: random packing with packmol."),
    density: float = typer.Option(
        None, "--density", "-d",
        help="Target density in g/cm^3 (default: volume-additivity estimate from the parent "
             "salts and oxides)."),
    seed: int = typer.Option(0, "--seed", "-s", help="Random seed; the same seed gives the same structure."),
    min_distance: float = typer.Option(
        None, "--min-distance",
        help="Minimum distance between any two atoms in Angstrom (default: per-pair table "
             "from ionic radii, see viglas.structures.geometry)."),
) -> None:
    """Build a periodic start model (glass precursor) of COMPOSITION and write it to a file.

    Example: viglas build LiAlCl2.5O0.75 --atoms 200 -o laco.cif
    """
    from viglas.structures import GlassComposition, build_glass, write_structure
    from viglas.structures.builder import METHODS, check_density
    from viglas.structures.composition import supercell_size
    from viglas.structures.io import check_output_path
    from viglas.errors import StructureError
    from viglas.units import density_g_cm3

    # validate everything cheap before the (slower) build
    comp = GlassComposition.from_formula(composition)
    if method not in METHODS:
        raise StructureError("unknown build method", field="method", value=method,
                             allowed=" or ".join(METHODS))
    check_density(density)
    supercell_size(comp, atoms)
    check_output_path(output)

    result = build_glass(comp, atoms, method=method, density=density, seed=seed,
                         min_distance=min_distance)
    path = write_structure(result, output)
    rho = density_g_cm3(float(result.get_masses().sum()), result.get_volume())
    a, b, c = result.cell.lengths()
    syms = result.get_chemical_symbols()
    cell_formula = " ".join(f"{el}{syms.count(el)}" for el in comp.counts_per_fu())
    typer.echo(f"formula      {comp.formula}  (cell: {cell_formula})")
    typer.echo(f"atoms        {len(result)}  ({result.info.get('size_message', '')})")
    typer.echo(f"method       {method}  (seed {seed})")
    typer.echo(f"density      {rho:.4f} g/cm^3")
    typer.echo(f"cell         {a:.3f} x {b:.3f} x {c:.3f} Angstrom, volume {result.get_volume():.1f} Angstrom^3")
    typer.echo(f"min distance {result.info['min_distance_A']:.3f} Angstrom ({result.info['min_distance_pair']})")
    if method == "substitution":
        typer.echo(f"oxygen       {result.info['n_bridging_O']} bridging M-O-M, "
                   f"{result.info['n_nonbridging_O']} non-bridging")
    typer.echo(f"written      {path}")


def register(app: typer.Typer) -> None:
    """Add the ``build`` command to the viglas CLI."""
    app.command("build")(build)
