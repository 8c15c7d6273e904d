"""The `guessfirst` command (notebook 16): it dispatches to each command's own `main`, which answers as under its first
name (`guessfirst-COMMAND`); a missing or unknown command is one line and exit status 2; `--help` imports neither
PyTorch nor any command's module; the installed console scripts answer the same."""
import subprocess, sys, time
from pathlib import Path
import pytest
from conftest import cli
from guessfirst_nb.cli import SUBCOMMANDS, command_main, main, usage

BIN = Path(sys.executable).parent
BAD_PROFILE = "error: unknown profile 'nope'; valid profiles: smoke, quick, paper-lite, paper\n"


def test_a_command_answers_as_under_its_first_name():
    from guessfirst_nb import train
    bad = cli(main, 'train', '--profile', 'nope')
    assert bad == (2, '', BAD_PROFILE)
    assert cli(train.main, '--profile', 'nope') == bad
    neg = cli(main, 'train', '--seed', '-1')   # refused before anything runs, as by its own name
    assert neg == cli(train.main, '--seed', '-1') and (neg[0], neg[1], neg[2].count('\n')) == (2, '', 1)
    assert cli(main, 'data', 'path') == cli(command_main('data'), 'path')


@pytest.mark.parametrize('args', [['nope'], ['--profile', 'smoke']])   # unknown, or an option where the command goes
def test_an_unknown_command_is_one_line(args):
    rc, o, e = cli(main, *args)
    assert (rc, o, e.count('\n')) == (2, '', 1)
    assert e.startswith(f'error: unknown command {args[0]!r}; valid commands: data, train, reproduce, audit, '
                        'stability, grid, forensics'), e


def test_no_command():
    rc, o, e = cli(main)
    assert rc == 2 and 'error: no command given; valid commands: data, train' in e, e


def test_help_and_version():
    rc, o, e = cli(main, '--help')
    assert (rc, e, o) == (0, '', usage())
    for name in SUBCOMMANDS: assert f'\n  {name} ' in o, name
    assert cli(main, '--version')[:2] == (0, 'guessfirst 0.1.0\n')
    rc, o, e = cli(main, 'train', '--help')   # the command's own help, under its name here
    assert rc == 0 and o.startswith('usage: guessfirst train [-h]') and '--model MODEL' in o and '--device DEVICE' in o, o
    from guessfirst_nb import train
    rc, o, e = cli(train.main, '--help')
    assert rc == 0 and o.startswith('usage: guessfirst-train [-h]'), o


def test_help_imports_no_torch():
    "In a fresh interpreter, `guessfirst --help` imports neither PyTorch nor any command's module."
    code = ('import sys; from guessfirst_nb.cli import main; main(["--help"]); '
            'print(sorted(m for m in sys.modules if m == "torch" or m.startswith("guessfirst_nb.")))')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert r.stdout.splitlines()[-1] == "['guessfirst_nb.cli']"


@pytest.mark.slow
def test_console_scripts():
    """Through the installed console scripts: `guessfirst --help` (fast: no torch), an unknown command (no
    traceback), and a bad value under both names."""
    t0 = time.perf_counter(); r = subprocess.run([BIN / 'guessfirst', '--help'], capture_output=True, text=True)
    t_help = time.perf_counter() - t0
    assert (r.returncode, r.stdout) == (0, usage())
    assert t_help < 30, t_help   # seconds, on a loaded machine; it imports no torch
    r = subprocess.run([BIN / 'guessfirst', 'nope'], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: unknown command 'nope'") and 'Traceback' not in r.stderr
    for exe in (['guessfirst', 'train'], ['guessfirst-train']):
        r = subprocess.run([BIN / exe[0], *exe[1:], '--profile', 'nope'], capture_output=True, text=True)
        assert (r.returncode, r.stderr) == (2, BAD_PROFILE)
