"""The engine of the BLIP benchmark harness: registries, runner, results, leaderboards.

Importing it asks torch to back its large CPU tensors with transparent huge pages
(``THP_MEM_ALLOC_ENABLE=1``, unless the environment already sets the variable). A tiny
BLIP's step allocates several ``[tokens, 30524]`` logit-sized tensors on the CPU, and
faulting them in 4 KiB pages cost about a sixth of the main job's training time; where
to store a tensor changes no value computed. Torch reads the variable at its first CPU
allocation, so it counts where ``harness`` is imported before torch, as in
``harness/run.py`` and ``python -m harness.regress``.
"""
import os

os.environ.setdefault('THP_MEM_ALLOC_ENABLE', '1')
