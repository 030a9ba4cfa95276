"""Task plugins: dataset readers, transforms, inference loops and metrics.

Importing this package registers every task piece in :mod:`harness.registry`.
"""

from . import caption, capfilt, datasets, metrics, retrieval, toyworld  # noqa: F401
