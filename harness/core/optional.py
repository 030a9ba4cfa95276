"""Heavy optional libraries (PyAV, decord, pycocoevalcap, open_clip) are imported where
they are used, through :func:`require`, so that a missing one fails with the package and
the feature that needs it instead of a bare ``ModuleNotFoundError`` at import time."""
import importlib
from types import ModuleType


def require(module: str, feature: str, package: str | None = None) -> ModuleType:
    """Import ``module`` for ``feature``, or raise an ImportError that says how to install it.

    Args:
        module: the dotted module name (``'decord'``, ``'pycocoevalcap.cider.cider'``).
        feature: what needs it, for the message (``'video frame sampling'``).
        package: the PyPI distribution when it differs from the module's top-level name.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        distribution = package or module.split('.')[0]
        raise ImportError(f'{feature} needs the {distribution!r} package, which is not '
                          f'installed here ({error}); install it with `pip install '
                          f'{distribution}` (or `pip install -e .` for everything)') from error
