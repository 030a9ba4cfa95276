"""Pictures of maps: one PNG overlay per word and one grid per text (matplotlib, lazily)."""
import io
import math
import pathlib
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from harness.core.files import atomic_write_bytes
from harness.core.optional import require

from .maps import TokenMaps


def display_image(path: pathlib.Path, size: int) -> np.ndarray:
    """The image file as the model saw it in extent: RGB ``[size, size, 3]`` uint8."""
    with Image.open(path) as image:
        return np.asarray(image.convert('RGB').resize((size, size), Image.BICUBIC))


def _draw(axis, image: np.ndarray, saliency: np.ndarray, title: str,
          box: Optional[Sequence[float]] = None) -> None:
    size = image.shape[0]
    axis.imshow(image)
    peak = saliency.max()
    axis.imshow(saliency / peak if peak > 0 else saliency, cmap='jet', alpha=0.5, vmin=0,
                vmax=1, extent=(0, size, size, 0), interpolation='bilinear')
    if box is not None:
        x0, y0, x1, y1 = (value * size for value in box)
        axis.add_patch(require('matplotlib.patches', 'explanation overlays').Rectangle(
            (x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor='white', linewidth=1.5))
    axis.set_title(title, fontsize=9)
    axis.axis('off')


def _save(figure, path: pathlib.Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=100, bbox_inches='tight')
    require('matplotlib.pyplot', 'explanation overlays').close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def overlay_png(path: pathlib.Path, image: np.ndarray, saliency: np.ndarray, title: str,
                box: Optional[Sequence[float]] = None) -> None:
    """Write ``saliency`` (``[h, w]``, normalised to its peak) over ``image`` as a PNG."""
    require('matplotlib', 'explanation overlays').use('Agg')
    pyplot = require('matplotlib.pyplot', 'explanation overlays')
    figure, axis = pyplot.subplots(figsize=(2.4, 2.6))
    _draw(axis, image, saliency, title, box)
    _save(figure, path)


def grid_png(path: pathlib.Path, image: np.ndarray, maps: TokenMaps, title: str) -> None:
    """Write the image and each word's map of ``maps`` side by side (rows of 6) as a PNG."""
    require('matplotlib', 'explanation overlays').use('Agg')
    pyplot = require('matplotlib.pyplot', 'explanation overlays')
    words = maps.words()
    panels = len(words.tokens) + 1
    columns = min(6, panels)
    rows = math.ceil(panels / columns)
    figure, axes = pyplot.subplots(rows, columns, figsize=(2.0 * columns, 2.2 * rows + 0.4),
                                   squeeze=False)
    for axis in axes.flat:
        axis.axis('off')
    axes.flat[0].imshow(image)
    axes.flat[0].set_title('image', fontsize=9)
    for axis, word, saliency in zip(axes.flat[1:], words.tokens, words.maps):
        _draw(axis, image, saliency, word)
    figure.suptitle(title, fontsize=10)
    _save(figure, path)
