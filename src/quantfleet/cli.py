"""The ``quantfleet`` command line: builds the Typer app and registers the commands, whose
bodies live in ``quantfleet.commands``.

Bad input (values, files, unknown commands and options, missing arguments) prints one line
on stderr and exits with code 2; no tracebacks.
"""

from __future__ import annotations

import difflib
import gc
import os
import sys

# the imports below (Typer, pydantic, the commands) make long-lived objects, no garbage: the
# cyclic collector would only walk them again and again as they grow (as it was, after)
_collecting = gc.isenabled()
gc.disable()
try:
    import typer

    from quantfleet.commands import data, jobs, observe, pipeline, research, runs
    from quantfleet.errors import QuantfleetError
finally:
    if _collecting:
        gc.enable()

__all__ = ["app", "main", "one_line", "run"]

_SETTINGS = {
    "name": "quantfleet",
    "help": "Trading-strategy research at scale: backtests, sweeps, tournaments, evolution, portfolios.",
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
}
_COMMANDS = (data.strategies, research.backtest, research.sweep, research.tournament,
             research.evolve, research.portfolio, observe.profile, observe.cost, observe.report,
             runs.query, pipeline.run, jobs.submit, pipeline.serve, pipeline.demo, pipeline.ui,
             pipeline.health)
"""The plain commands (not the sub-apps' groups), in ``--help`` order."""

app = typer.Typer(**_SETTINGS)
for _cmd in _COMMANDS:
    app.command()(_cmd)
app.add_typer(data.app, name="data")
app.add_typer(runs.app, name="runs")
app.add_typer(jobs.app, name="jobs")

from quantfleet.cluster import app as cluster_app  # noqa: E402  (typer only; ray lazily)

app.add_typer(cluster_app, name="cluster")


def one_line(text: object) -> str:
    """``text`` as one printable line: newlines folded, control and undecodable characters
    escaped (a binary file's bytes never reach the terminal), at most 500 characters."""
    s = " ".join(str(text).split())
    s = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256
                else f"\\u{ord(c):04x}" for c in s)
    return s if len(s) <= 500 else s[:497] + "..."


def _error(msg: object) -> None:
    typer.echo(f"error: {one_line(msg)}", err=True)
    sys.exit(2)


def _usage_error(e: Exception) -> None:
    """A usage error (Typer's click) as one line, with a did-you-mean for an unknown command."""
    msg = e.format_message() if hasattr(e, "format_message") else str(e)
    if not msg.strip():  # a group called without a command: its help is already printed
        sys.exit(2)
    ctx = getattr(e, "ctx", None)
    group = getattr(ctx, "command", None)
    cmd_path = ctx.command_path if ctx is not None else "quantfleet"
    if msg.startswith("No such command") and hasattr(group, "list_commands"):
        bad = msg.split("'")[1] if "'" in msg else ""
        hits = difflib.get_close_matches(bad, group.list_commands(ctx), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(h) for h in hits)}?" if hits else ""
        msg = (f"unknown command {bad!r} for {cmd_path}{hint} "
               f"(`{cmd_path} --help` lists the commands)")
    else:
        msg = f"{msg.rstrip('.')} (`{cmd_path} --help` shows the usage)"
    _error(msg)


def _app_for(args: list[str]) -> typer.Typer:
    """The app that runs ``args``: when the first word names a plain command, an app of that
    command alone (Typer builds every registered command's parameters before it parses; one
    command's are all this run needs), parsing and failing exactly as the whole app does for
    it; else the whole app (help, the sub-apps, a misspelt command's did-you-mean)."""
    name = args[0] if args else ""
    for cmd in _COMMANDS:
        if cmd.__name__.replace("_", "-") == name:
            one = typer.Typer(**_SETTINGS)
            one.callback()(_group)  # a group, as the whole app: `quantfleet NAME ...`
            one.command()(cmd)
            return one
    return app


def _group() -> None:
    """Trading-strategy research at scale: backtests, sweeps, tournaments, evolution, portfolios."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning bad input into one line on stderr and exit code 2."""
    try:
        rv = _app_for(sys.argv[1:] if argv is None else argv)(
            args=argv, prog_name="quantfleet", standalone_mode=False)
        # click returns the code of typer.Exit instead of raising it when not standalone
        if isinstance(rv, int) and rv:
            sys.exit(rv)
    except QuantfleetError as e:
        _error(e)
    except TypeError as e:
        if os.environ.get("QUANTFLEET_DEBUG"):
            raise
        _error(e)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as e:  # unknown command or option, bad value, missing argument
        _usage_error(e)
    except FileNotFoundError as e:
        _error(f"{e.filename or e}: file not found")
    except OSError as e:
        _error(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}")
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


_SHORT = frozenset({"backtest"})
"""Short commands (:func:`run`): mostly start-up, little garbage of their own, and no extension
whose own exit-time check counts the objects still alive as leaks (duckdb's nanobind bindings,
for ``query``, report them on stderr)."""


def run() -> None:
    """The process's entry (the ``quantfleet`` console script, ``python -m quantfleet.cli``):
    :func:`main` on ``sys.argv``, as the whole process. A short command (:data:`_SHORT`) runs
    with the cyclic garbage collector paused from its parsing on, and every object still alive
    at its end is frozen (``gc.freeze``), so the interpreter's exit does not walk them all again
    in its final collections (all the imported modules: numba's alone are hundreds of
    thousands of objects); the process ends right after, so nothing is kept longer. A program
    that calls :func:`main` itself is not affected."""
    short = (sys.argv[1] if len(sys.argv) > 1 else "") in _SHORT
    if short:
        gc.disable()
    try:
        main()
    finally:
        if short:
            gc.freeze()


if __name__ == "__main__":
    run()
