"""The package layers: light imports, no cycle-dodging imports, contracts that bite."""
import ast
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
FIRST_PARTY = ('harness', 'backbones', 'tasks')
HEAVY = ('av', 'decord', 'pycocoevalcap', 'open_clip', 'matplotlib', 'tasks.toyworld')


def run_python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter at the repository root."""
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


BLOCKER = f'''
import importlib.abc, sys
BLOCKED = {HEAVY!r}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + '.') for b in BLOCKED):
            raise ImportError(f'{{name}} is blocked by the test')
sys.meta_path.insert(0, Blocker())
'''


@pytest.mark.parametrize('module', ['tasks.retrieval', 'tasks.retrieval.rerank',
                                    'tasks.metrics.retrieval', 'tasks.metrics.vqa',
                                    'tasks.metrics.caption', 'backbones.blip',
                                    'backbones.checkpoint', 'tasks.caption'])
def test_models_rerankers_and_metrics_import_without_heavy_libraries(module):
    result = run_python(BLOCKER + f'import {module}\n'
                        'loaded = [m for m in sys.modules if m.split(".")[0] in BLOCKED '
                        'or m.startswith("tasks.toyworld")]\n'
                        'assert not loaded, loaded\n')
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_missing_optional_library_names_the_package_and_the_feature():
    result = run_python(BLOCKER + textwrap.dedent('''
        from tasks.metrics.caption import score_captions
        try:
            score_captions({1: ['a red circle']}, {1: 'a red circle'}, ['CIDEr'])
        except ImportError as error:
            print(error)
        '''))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "needs the 'pycocoevalcap' package" in result.stdout
    assert 'caption metrics' in result.stdout


def first_party_imports_inside_functions(path: pathlib.Path) -> list:
    """``(line, module)`` of every import of our own packages inside a function body."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = ['.' if node.level else node.module or '']
            else:
                continue
            found += [(node.lineno, name) for name in names
                      if name == '.' or name.split('.')[0] in FIRST_PARTY]
    return found


def test_no_function_level_imports_of_our_own_modules():
    offenders = []
    for package in FIRST_PARTY:
        for path in sorted((REPO / package).rglob('*.py')):
            offenders += [f'{path.relative_to(REPO)}:{line} imports {name}'
                          for line, name in first_party_imports_inside_functions(path)]
    assert not offenders, 'imports hidden inside functions (a cycle being dodged?):\n' + \
        '\n'.join(offenders)


def test_import_linter_contracts_hold_and_catch_a_backwards_import(tmp_path):
    lint = pathlib.Path(sys.executable).with_name('lint-imports')
    if not lint.exists():
        pytest.skip('import-linter is not installed in this environment')
    kept = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert kept.returncode == 0, kept.stdout[-3000:]
    # The same contracts on a copy where a backbone imports the experiment runner: broken.
    copy = tmp_path / 'repo'
    for package in FIRST_PARTY:
        shutil.copytree(REPO / package, copy / package,
                        ignore=shutil.ignore_patterns('__pycache__'))
    (copy / '.importlinter').write_text((REPO / '.importlinter').read_text())
    vit = copy / 'backbones' / 'vit.py'
    vit.write_text('import harness.experiment  # backwards\n' + vit.read_text())
    broken = subprocess.run([str(lint)], cwd=copy, capture_output=True, text=True, timeout=300,
                            env={'PYTHONPATH': str(copy), 'PATH': '/usr/bin:/bin'})
    assert broken.returncode != 0
    assert 'backbones.vit -> harness.experiment' in broken.stdout
