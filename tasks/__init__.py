"""Task plugins: dataset readers, transforms, inference loops and metrics.

Importing this package registers every task piece in :mod:`harness.registry`.
"""

from . import caption, datasets, metrics, retrieval, toyworld  # noqa: F401
