"""mmengine's entry to our registries: for ``default_scope='harness'`` it imports
``harness.registry`` by name. The registries themselves live in the bottom layer,
:mod:`harness.core.registry`; plugins import them from there."""
from harness.core.registry import *  # noqa: F401,F403
