"""The bottom layer: registries, atomic file helpers, result types and the written
interfaces between plugins. It imports no plugin (``backbones``, ``tasks``) and nothing else
of ``harness``; ``.importlinter`` enforces it."""
