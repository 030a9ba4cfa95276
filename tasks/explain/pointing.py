"""The pointing game: does a saliency map point at the object a phrase names?

A map is a ``[h, w]`` grid of non-negative cells over the image; a box is ``(x0, y0, x1,
y1)`` in [0, 1] image coordinates. A *hit* is a map whose peak cell has its centre inside
the box; the *mass share* is the map's total inside the box, cells counted by the fraction
of their area the box covers. A map that knows nothing (uniform, or a random point) scores
the box's area share on both, which is the chance level reported beside them.
"""
import dataclasses
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class PointingScore:
    """One map against one box: ``hit`` (peak inside), ``mass_share`` and ``chance``."""

    hit: bool
    mass_share: float
    chance: float


def cell_coverage(box: Sequence[float], cells: int, axis: int) -> np.ndarray:
    """Fraction of each of ``cells`` equal cells along one axis (0: x, 1: y) the box covers."""
    low, high = box[axis], box[axis + 2]
    edges = np.arange(cells + 1) / cells
    return np.clip(np.minimum(high, edges[1:]) - np.maximum(low, edges[:-1]), 0, None) * cells


def pointing_game(saliency: np.ndarray, box: Sequence[float]) -> PointingScore:
    """Score a ``[h, w]`` non-negative map against ``box`` (see the module docstring).

    The peak is the first largest cell (row-major); a map with no mass scores no hit and
    a mass share of 0.
    """
    saliency = np.asarray(saliency, dtype=np.float64)
    if saliency.ndim != 2 or (saliency < 0).any():
        raise ValueError(f'pointing_game needs a non-negative [h, w] map, got shape '
                         f'{saliency.shape} with minimum {saliency.min():.3g}')
    x0, y0, x1, y1 = (min(max(float(value), 0.0), 1.0) for value in box)
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f'box {tuple(box)} is empty; give (x0, y0, x1, y1) in [0, 1] with '
                         f'x0 < x1 and y0 < y1')
    height, width = saliency.shape
    chance = (x1 - x0) * (y1 - y0)
    total = saliency.sum()
    if total <= 0:
        return PointingScore(False, 0.0, chance)
    coverage = np.outer(cell_coverage((x0, y0, x1, y1), height, 1),
                        cell_coverage((x0, y0, x1, y1), width, 0))
    row, col = np.unravel_index(int(saliency.argmax()), saliency.shape)
    centre_x, centre_y = (col + 0.5) / width, (row + 0.5) / height
    hit = bool(x0 <= centre_x <= x1 and y0 <= centre_y <= y1)
    return PointingScore(hit, float((saliency * coverage).sum() / total), chance)
