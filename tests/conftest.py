"""Shared pytest fixtures."""
import pytest

from tasks.toyworld import ToyWorldSpec, ensure_toyworld


@pytest.fixture(scope='session')
def tiny_toyworld(tmp_path_factory):
    """The data root of a tiny ToyWorld (seed 0), generated once per test session."""
    return ensure_toyworld(ToyWorldSpec.tiny(), tmp_path_factory.mktemp('toyworld') / 'tiny')


@pytest.fixture(scope='module')
def tiny_vqa_model(tiny_toyworld):
    """A tiny random BlipVQA (32-px images) on the tiny ToyWorld's vocabulary."""
    import torch

    from harness.core.registry import MODELS
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='BlipVQA', text_arch='tiny',
        vision=dict(type='BlipViT', arch='vit_tiny_patch8', image_size=32),
        tokenizer=dict(type='BlipTokenizer', vocab=str(tiny_toyworld / 'vocab')))).eval()


# The tiny ToyWorld spec as config overrides: a dict for load_config, strings for the CLI.
TINY_TOYWORLD_CFG = {f'toyworld.{key}': value for key, value in
                     ToyWorldSpec.tiny().to_dict().items() if key != 'generator_version'}
TINY_TOYWORLD_OPTIONS = [f'{key}={value}' for key, value in TINY_TOYWORLD_CFG.items()]


@pytest.fixture
def run_cli(tmp_path, tiny_toyworld):
    """Run ``python harness/run.py CONFIG ...`` on the tiny ToyWorld in a subprocess.

    Returns a function ``(config, *args) -> CompletedProcess`` (raises with the output
    when the command fails).
    """
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]

    def run(config, *args, cfg_options=()):
        command = [sys.executable, 'harness/run.py', config, *args, '--cfg-options',
                   f'toyworld_dir={tiny_toyworld}', *TINY_TOYWORLD_OPTIONS, *cfg_options]
        done = subprocess.run(command, cwd=repo, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONHASHSEED='0'))
        if done.returncode != 0:
            raise AssertionError(f'{" ".join(command)} failed:\n{done.stdout[-4000:]}\n'
                                 f'{done.stderr[-6000:]}')
        return done
    return run
