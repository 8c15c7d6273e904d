"""Time and disk of the README's two commands, from a fresh clone, as a newcomer meets them.

    python benchmarks/commands.py                     # writes benchmarks/commands.json
    python benchmarks/commands.py --steps test        # only the set-up and `make test` (the other steps kept)

Clones this checkout's HEAD into a temporary folder, then times there `make setup data` (the virtual environment, the
package and the verified data), `make test` (the tests only: the set-up is done), and `make reproduce` (the quick
profile, both datasets); records the disk each leaves (the .venv, the data, the runs and results), the machine's cores
and whether other work ran beside (the load average before each step). The data folder is the clone's own
(GUESSFIRST_DATA), so the data is fetched as a newcomer's is. Nothing is left behind but the JSON."""
import argparse, json, os, platform, shutil, subprocess, sys, tempfile, time
from pathlib import Path
from guessfirst_nb.io import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent


def du(path) -> int:
    "Bytes under `path` (0 if missing)."
    p = Path(path)
    if not p.exists(): return 0
    return sum(f.stat().st_size for f in p.rglob('*') if f.is_file() and not f.is_symlink())


def step(cmd, cwd, env) -> dict:
    "Run `cmd`; its seconds, exit status and the 1-minute load average before it."
    load = os.getloadavg()[0]; t0 = time.time()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode: sys.stderr.write(p.stdout[-3000:] + p.stderr[-3000:])
    return dict(command=' '.join(cmd), seconds=round(time.time() - t0, 1), returncode=p.returncode,
                load_before=round(load, 2))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--steps', nargs='+', choices=['test', 'reproduce'], default=['test', 'reproduce'],
                    help="what to time (default: both); the JSON keeps the other steps' earlier records")
    ap.add_argument('--out', default=str(ROOT / 'benchmarks' / 'commands.json'))
    a = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix='gf-commands-'))
    try:
        clone = tmp / 'guessfirst'
        subprocess.run(['git', 'clone', '-q', str(ROOT), str(clone)], check=True)
        commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=clone, capture_output=True, text=True).stdout.strip()
        env = dict(os.environ, GUESSFIRST_DATA=str(tmp / 'data'))
        out = Path(a.out)
        doc = json.loads(out.read_text()) if out.exists() else dict(steps={}, disk_bytes={})
        doc.update(date=time.strftime('%Y-%m-%d'), cores=os.cpu_count(), machine=platform.machine(),
                   python=platform.python_version())
        steps, disk = doc['steps'], doc['disk_bytes']
        steps['set-up'] = dict(step(['make', 'setup', 'data'], clone, env), commit=commit)
        disk.update({'.venv': du(clone / '.venv'), 'data': du(tmp / 'data')})
        if 'test' in a.steps: steps['make test'] = dict(step(['make', 'test'], clone, env), commit=commit)
        if 'reproduce' in a.steps:
            steps['make reproduce'] = dict(step(['make', 'reproduce'], clone, env), commit=commit)
            disk['runs and results'] = du(clone / 'runs') + du(clone / 'results' / 'quick')
        atomic_write_text(out, json.dumps(doc, indent=1) + '\n')
        print(json.dumps(doc, indent=1))
        return 0 if all(s['returncode'] == 0 for s in steps.values()) else 1
    finally: shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__': sys.exit(main())
