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


def _cli_exception_classes() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(usage/click errors, exits, aborts) of every click flavour that may be raised:
    click itself and the copy bundled with typer >= 0.26 (``typer._click``), whose
    exception classes are not click's."""
    errors: list[type] = []
    exits: list[type] = [typer.Exit]
    aborts: list[type] = [typer.Abort]
    for modname in ("click.exceptions", "typer._click.exceptions", "typer.exceptions"):
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        for attr, bucket in (("ClickException", errors), ("Exit", exits), ("Abort", aborts)):
            cls = getattr(mod, attr, None)
            if isinstance(cls, type) and cls not in bucket:
                bucket.append(cls)
    return tuple(errors), tuple(exits), tuple(aborts)


_INTERRUPTED = "interrupted: rerun the same command to resume from the last checkpoint"


def _interrupted() -> int:
    typer.secho(_INTERRUPTED, fg=typer.colors.YELLOW, err=True)
    return 130


def _os_error_line(exc: OSError) -> str:
    """One line for a file-system error: which path, what went wrong, what to do."""
    import errno

    path = exc.filename or "?"
    what = exc.strerror or type(exc).__name__
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "choose a writable location (--output / --workdir) or fix its permissions"
    elif exc.errno == errno.ENOSPC:
        fix = "free disk space and rerun (finished work is kept)"
    elif exc.errno == errno.ENOENT:
        fix = "check the path"
    else:
        fix = "check the path and rerun"
    return f"{path}: {what}. {fix}"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``viglas`` console script.

    Every way a command can end is mapped to a message without a traceback: viglas
    errors and file-system errors as one line (exit 2), usage errors as click prints
    them (exit 2), Ctrl-C or SIGTERM as the "interrupted: rerun ..." line (exit 130).
    Works with click's own exception classes and with those bundled in typer.
    """
    usage_errors, exits, aborts = _cli_exception_classes()
    args = sys.argv[1:] if argv is None else list(argv)
    if argv is None:
        # Ctrl-C must stop viglas at a resumable point even when it was started by a
        # process that ignores SIGINT (a script's background job, a test runner): an
        # ignored SIGINT is inherited across exec, and the MD would then run on.
        import signal

        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        rc = app(args=args, standalone_mode=False, prog_name="viglas")
        if rc == 130:  # typer >= 0.26 turns KeyboardInterrupt into Exit(130) and returns it
            return _interrupted()
        if isinstance(rc, int) and rc:  # typer.Exit(code) is returned, not raised, here
            return rc
    except ViglasError as exc:
        typer.secho(f"error: {exc.one_line()}", fg=typer.colors.RED, err=True)
        return 2
    except KeyboardInterrupt:
        return _interrupted()
    except exits as exc:
        code = getattr(exc, "exit_code", 1)
        return _interrupted() if code == 130 else code
    except aborts as exc:  # click < typer 0.26: KeyboardInterrupt becomes Abort
        if isinstance(exc.__context__, KeyboardInterrupt):
            return _interrupted()
        typer.secho("aborted", err=True)
        return 1
    except usage_errors as exc:
        exc.show()
        return getattr(exc, "exit_code", 2) or 2
    except OSError as exc:  # a read-only or full disk, a missing folder
        typer.secho(f"error: {_os_error_line(exc)}", fg=typer.colors.RED, err=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
