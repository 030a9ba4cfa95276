"""Shared pytest fixtures."""
import pytest

from tasks.toyworld import ToyWorldSpec, ensure_toyworld


@pytest.fixture(scope='session')
def tiny_toyworld(tmp_path_factory):
    """The data root of a tiny ToyWorld (seed 0), generated once per test session."""
    return ensure_toyworld(ToyWorldSpec.tiny(), tmp_path_factory.mktemp('toyworld') / 'tiny')
