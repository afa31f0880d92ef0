"""The CLI's start-up: the backtest command runs with the cyclic garbage collector paused (and
restores it), its process exits with what is alive frozen (no final collections over it), and
a plain command is parsed by an app of that command alone, exactly as the whole app parses
it."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import quantfleet.cli as cli
from quantfleet.commands.options import gc_paused


def test_gc_paused_pauses_and_restores_the_collector():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()  # restored on an error too
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # as it was: off
    finally:
        gc.enable()


def _write_csv(path, bars: int = 120) -> None:
    import numpy as np

    close = 100 + np.cumsum(np.sin(np.arange(bars) / 5.0))
    days = np.datetime64("2020-01-01") + np.arange(bars)
    with open(path, "w") as f:
        f.write("Date,Close\n")
        for d, c in zip(days, close, strict=True):
            f.write(f"{d},{c:.4f}\n")


@pytest.mark.parametrize(("command", "paused"), [("backtest", True), ("sweep", False)])
def test_only_the_backtest_command_runs_with_the_collector_paused(tmp_path, monkeypatch,
                                                                  capsys, command, paused):
    import quantfleet.commands.research as research

    seen = []
    run = research.run_research

    def spy(*args, **kw):
        seen.append(gc.isenabled())
        return run(*args, **kw)

    monkeypatch.setattr(research, "run_research", spy)
    csv = tmp_path / "ACME.csv"
    _write_csv(csv)
    extra = ["--grid", "fast=5,10", "--grid", "slow=30"] if command == "sweep" else []
    cli.main([command, str(csv), "-s", "sma_cross", *extra, "--no-store", "--json"])
    assert seen == [not paused]
    assert gc.isenabled()
    out = json.loads(capsys.readouterr().out)
    assert out["strategy"] == "sma_cross"


def _exit_state(*args: str) -> tuple[list[str], str]:
    """What an exit handler registered before :func:`cli.run` (so run after everything of the
    command's) sees: whether objects are frozen; and the command's stderr."""
    code = ("import atexit, gc, sys\n"
            "atexit.register(lambda: print('frozen at exit', gc.get_freeze_count() > 0))\n"
            f"sys.argv = ['quantfleet', *{list(args)!r}]\n"
            "from quantfleet.cli import run\n"
            "run()\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300)
    return p.stdout.splitlines(), p.stderr


def test_the_backtest_process_exits_frozen(tmp_path):
    csv = tmp_path / "ACME.csv"
    _write_csv(csv)
    out, err = _exit_state("backtest", str(csv), "-s", "sma_cross", "--no-store", "--json")
    assert out[-1] == "frozen at exit True" and not err.strip()
    assert json.loads("\n".join(out[:-1]))["strategy"] == "sma_cross"
    # a bad input exits 2 the same way
    out, err = _exit_state("backtest", str(csv), "-s", "nope", "--no-store")
    assert out == ["frozen at exit True"] and err.startswith("error: ")


def test_other_commands_exit_as_usual(tmp_path):
    # duckdb's bindings count what is alive at exit as leaks: query must exit unfrozen, quiet
    out, err = _exit_state("query", "select 1 as one", "--store", str(tmp_path / "lake"))
    assert out[-1] == "frozen at exit False" and "leak" not in err, err
    out, _ = _exit_state("strategies", "--json")
    assert out[-1] == "frozen at exit False"


@pytest.mark.parametrize("before", ["", "gc.disable()\n"])
def test_importing_the_cli_leaves_the_collector_as_it_was(before):
    code = f"import gc\n{before}import quantfleet.cli\nprint(gc.isenabled())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300).stdout.strip()
    assert out == ("False" if before else "True")


def test_main_called_in_process_freezes_nothing(capsys):
    cli.main(["strategies", "--json"])
    assert gc.get_freeze_count() == 0 and gc.isenabled()


def test_a_plain_command_gets_an_app_of_its_own():
    one = cli._app_for(["backtest", "x"])
    assert one is not cli.app
    assert [c.callback for c in one.registered_commands] == [cli.research.backtest]
    for args in ([], ["--help"], ["runs", "list"], ["data", "info", "x"], ["backtst"]):
        assert cli._app_for(args) is cli.app, args
    assert {c.__name__ for c in cli._COMMANDS} == {c.callback.__name__
                                                  for c in cli.app.registered_commands}


@pytest.mark.parametrize("args", [
    ["backtest", "--help"], ["sweep", "--help"], ["strategies", "--help"], ["backtest"],
    ["backtest", "x.csv", "-s", "sma_cross", "--bogus"], ["query", "--help"],
    ["tournament", "x.csv", "--top", "oops"]])
def test_the_one_command_app_parses_and_fails_as_the_whole_app(args):
    runner = CliRunner()
    whole = runner.invoke(cli.app, args, prog_name="quantfleet", terminal_width=100)
    one = runner.invoke(cli._app_for(args), args, prog_name="quantfleet", terminal_width=100)
    assert (one.exit_code, one.output) == (whole.exit_code, whole.output)
    assert one.output
