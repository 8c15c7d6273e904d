"The README's first screen: what a newcomer must learn in its first 40 lines (issue 27)."
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / 'README.md').read_text()
HEAD = '\n'.join(TEXT.splitlines()[:40])


def test_readme_is_short():
    assert len(TEXT) < 15_000, f'README.md has {len(TEXT):,} characters; keep it under 15,000 (link to results/*.md)'


def test_first_screen_links_the_paper_and_names_both_claims():
    assert 'https://arxiv.org/abs/2001.03311' in HEAD
    assert '**compression**' in HEAD and '**adversarial robustness**' in HEAD


def test_first_screen_spells_out_every_model():
    for name, words in [('C-DV', 'Donsker-Varadhan'), ('C-JS', 'Jensen-Shannon'), ('C-DV-IE', 'information-elimination'),
                        ('Alemi', 'variational information bottleneck'), ('CNN', 'baseline'), ('LeNet5', 'substitute')]:
        assert f'**{name}**' in HEAD and words in HEAD, name


def test_first_screen_gives_both_commands_with_time_and_disk():
    for cmd in ('make test', 'make reproduce'):
        line = next((l for l in HEAD.splitlines() if l.startswith(cmd)), None)
        assert line is not None, f'{cmd} is not in the first 40 lines'
        assert re.match(re.escape(cmd) + r'\s+# \d+ (min|s)\b', line), f'{cmd}: no time: {line}'
    assert re.search(r'make test .*\d+\.\d GB', HEAD), 'make test: no disk'


def test_first_screen_verdict_bullets_are_short():
    screen = HEAD.split('## ')[0]   # the first screen: up to the first section heading
    bullets = [l for l in screen.splitlines() if l.startswith('- **')]
    assert len(bullets) >= 5, 'the first 40 lines should hold the verdict bullets'
    # about 250 characters each, markdown links to the detail included
    long = [(len(b), b[:60]) for b in bullets if len(b) > 300]
    assert not long, long
