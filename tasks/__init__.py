"""Task plugins: dataset readers, transforms, inference loops and metrics.

Importing this package registers every task piece in :mod:`harness.registry`.
"""

from . import datasets, toyworld  # noqa: F401
