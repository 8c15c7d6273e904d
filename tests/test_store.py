"""The stage store (notebook 07a) as the studies use it: two processes share a study, a killed process leaves no
half-written stage, a key compares as JSON stores it."""
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest
from guessfirst_nb.store import Store, stage_key, plain, git_commit

WORKER = textwrap.dedent('''
    import sys, time, json
    from pathlib import Path
    from guessfirst_nb.store import Store
    folder, me, stages, delay = sys.argv[1], sys.argv[2], sys.argv[3].split(','), float(sys.argv[4])
    st = Store(folder, log=lambda *a: None)
    for s in stages:
        def compute(s=s):
            time.sleep(delay)
            with open(Path(folder).parent / 'computed.log', 'a') as f: f.write(f'{me} {s}\\n')
            return dict(stage=s, by=me)
        r = st.run(s, dict(stage=s), compute)
        print(s, r.value['by'], r.resumed, flush=True)
''')

def _worker(tmp, me, stages, delay=0.0):
    return subprocess.Popen([sys.executable, '-c', WORKER, str(tmp / 'study.stages'), me, ','.join(stages), str(delay)],
                            stdout=subprocess.PIPE, text=True)

@pytest.mark.slow
def test_two_processes_share_a_study_and_a_third_takes_both(tmp_path):
    a, b = _worker(tmp_path, 'A', ['black', 'C-DV']), _worker(tmp_path, 'B', ['C-JS', 'CNN'])
    assert a.wait(60) == 0 and b.wait(60) == 0
    c = _worker(tmp_path, 'C', ['black', 'C-DV', 'C-JS', 'CNN'])
    out, _ = c.communicate(timeout=60)
    by = {l.split()[0]: (l.split()[1], l.split()[2]) for l in out.splitlines()}
    assert by == {'black': ('A', 'True'), 'C-DV': ('A', 'True'), 'C-JS': ('B', 'True'), 'CNN': ('B', 'True')}
    assert sorted((tmp_path / 'computed.log').read_text().split('\n')[:-1]) == ['A C-DV', 'A black', 'B C-JS', 'B CNN']

@pytest.mark.slow
def test_a_stage_finished_by_another_process_meanwhile_is_taken(tmp_path):
    slow = _worker(tmp_path, 'slow', ['x', 'y'], delay=2.0)      # computes x (2 s), then asks for y
    time.sleep(0.5)
    fast = _worker(tmp_path, 'fast', ['y'])                       # finishes y while slow is still on x
    assert fast.wait(60) == 0 and slow.wait(60) == 0
    out = slow.stdout.read()
    assert 'y fast True' in out, out
    assert (tmp_path / 'computed.log').read_text().count(' y') == 1

@pytest.mark.slow
def test_a_process_killed_while_saving_leaves_no_stage(tmp_path):
    "Killed with half the stage's file written: nothing counts as finished, and the next run computes and saves it."
    code = textwrap.dedent('''
        import sys, pathlib, time
        from guessfirst_nb.store import Store
        def half(self, text, *a, **k):   # every text write stops half way, and the process is killed there
            with open(self, 'w') as f: f.write(text[:len(text) // 2]); f.flush()
            print('writing', flush=True); time.sleep(60)
        pathlib.Path.write_text = half
        Store(sys.argv[1]).put('big', dict(k=1), list(range(1000)))
    ''')
    p = subprocess.Popen([sys.executable, '-c', code, str(tmp_path / 's')], stdout=subprocess.PIPE, text=True)
    try: assert p.stdout.readline().strip() == 'writing'
    finally: p.send_signal(signal.SIGKILL); p.wait(10)
    st = Store(tmp_path / 's', log=lambda *a: None)
    left = [q.name for q in st.folder.iterdir()]
    assert not st.path('big').exists() and st.get('big', dict(k=1)) is None
    assert len(left) == 1 and left[0].startswith('.big.json.') and left[0].endswith('.tmp'), left   # the half file
    assert st.run('big', dict(k=1), lambda: list(range(1000))).resumed is False
    assert st.get('big', dict(k=1)).value == list(range(1000))

def test_records_say_what_made_them(tmp_path):
    st = Store(tmp_path / 's', log=lambda *a: None)
    rec = st.run('one', dict(config=(1, 2)), lambda: dict(v=(3, 4)))
    on_disk = json.loads(st.path('one').read_text())
    assert on_disk['key'] == {'config': [1, 2]} and on_disk['value'] == {'v': [3, 4]}
    assert on_disk['commit'] == git_commit() and on_disk['seconds'] >= 0 and rec.resumed is False
    assert st.get('one', dict(config=[1, 2])).value == {'v': [3, 4]}      # a tuple key reads back as a list

def test_a_key_names_each_checkpoint_by_its_bytes(tmp_path):
    p = tmp_path / 'last.pt'; p.write_bytes(b'1')
    k1 = stage_key(dict(eps=0.3), dict(n=10, seed=0), {'CNN': p})
    os.utime(p, ns=(0, 0)); assert stage_key(dict(eps=0.3), dict(n=10, seed=0), {'CNN': p}) == k1   # times do not count
    p.write_bytes(b'2'); assert stage_key(dict(eps=0.3), dict(n=10, seed=0), {'CNN': p}) != k1
    with pytest.raises(FileNotFoundError): stage_key({}, {}, {'CNN': tmp_path / 'missing.pt'})
