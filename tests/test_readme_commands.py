"""The commands the README shows work as written: every script exists and answers --help, every
command line parses with the script's own parser, every file it names exists, and a checkpoint it
names is one that the config's schedule writes. (The README once showed `iter_300.pth` for a
600-iteration run that keeps only its last checkpoint.) The `--max-iters` smoke runs of the table
tool are exercised end to end in tests/table/test_table1_e2e.py."""
import importlib.util
import os
import re
import shlex
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARSERS = {'tools/train.py', 'tools/table1.py', 'tools/imbalance_stats.py'}


def readme_commands():
    text = open(os.path.join(REPO, 'README.md')).read()
    commands = []
    for block in re.findall(r'```bash\n(.*?)```', text, re.S):
        for line in block.splitlines():
            line = line.split('  #')[0].strip()
            if re.match(r'(python|bash) (tools|benchmarks)/', line):
                commands.append(shlex.split(line))
    return commands


COMMANDS = readme_commands()
SCRIPTS = sorted({cmd[1] for cmd in COMMANDS})


def test_the_readme_shows_the_tools():
    assert {'tools/train.py', 'tools/test.py', 'tools/table1.py'} <= set(SCRIPTS)


@pytest.mark.parametrize('script', [s for s in SCRIPTS if s.endswith('.py')])
def test_every_script_answers_help(script):
    proc = subprocess.run([sys.executable, os.path.join(REPO, script), '--help'], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and 'usage' in proc.stdout.lower(), proc.stderr[-2000:]


def _load(script):
    spec = importlib.util.spec_from_file_location(script.replace('/', '_')[:-3],
                                                  os.path.join(REPO, script))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('cmd', COMMANDS, ids=lambda c: ' '.join(c[1:4]))
def test_every_command_parses_and_names_existing_files(cmd):
    script, args = cmd[1], cmd[2:]
    assert os.path.isfile(os.path.join(REPO, script)), script
    for arg in args:
        if arg.startswith('configs/'):
            assert os.path.isfile(os.path.join(REPO, arg)), arg
        match = re.search(r'iter_(\d+)\.pth$', arg)
        if match:
            from mmdet_imbalance.testing import load_config
            config = next(a for a in args if a.startswith('configs/'))
            max_iters = load_config(os.path.join(REPO, config)).train_cfg.max_iters
            assert int(match.group(1)) == max_iters
    if script in PARSERS:
        _load(script).parse_args(args)


def _published_block(text):
    """The header lines (Command, Seeds, Machine, Built) and the rows of the first table."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('Command: `python tools/'
                                                                       'table1.py --from-results'))
    end = next(i for i in range(start, len(lines))
               if lines[i].startswith('|') and not lines[i + 1].startswith('|'))
    return lines[start:end + 1]


def test_the_readme_table_is_the_published_one():
    """The README shows docs/table1.md's header and table as generated from results/, not an
    edited or stale copy."""
    published = _published_block(open(os.path.join(REPO, 'docs', 'table1.md')).read())
    readme = _published_block(open(os.path.join(REPO, 'README.md')).read())
    assert len(published) > 10
    assert readme == published
