"""The ``viglas`` command line (typer). ``viglas --help`` lists the commands.

Errors of the :class:`viglas.errors.ViglasError` family are printed as one line
(``error: field: message (got ...; allowed: ...)``) with exit code 2, no traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import typer

from viglas import __version__
from viglas.commands import COMMAND_MODULES
from viglas.errors import ViglasError

app = typer.Typer(
    name="viglas",
    help=(
        "viglas: how fast Li+ and Na+ move through viscoelastic inorganic glass "
        "(VIGLAS) electrolytes such as LiAlCl2.5O0.75.\n\n"
        "Typical use: 'viglas run configs/quick.yaml' runs the whole pipeline "
        "(glass model -> melt-quench -> MD at several temperatures -> D, sigma, "
        "Arrhenius) on this machine. Single steps: build, md, melt-quench, analyze, "
        "arrhenius. Units: Angstrom, fs, K, eV inside; outputs carry units in names."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"viglas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """viglas command line."""


def _register_all() -> None:
    for name in COMMAND_MODULES:
        modname = f"viglas.commands.{name}"
        if importlib.util.find_spec(modname) is None:
            continue
        importlib.import_module(modname).register(app)


_register_all()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``viglas`` console script."""
    try:
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:  # typer.Exit(code) is returned, not raised, here
            return rc
    except ViglasError as exc:
        typer.secho(f"error: {exc.one_line()}", fg=typer.colors.RED, err=True)
        return 2
    except KeyboardInterrupt:
        typer.secho("interrupted: rerun the same command to resume from the last checkpoint",
                    fg=typer.colors.YELLOW, err=True)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return 1
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
