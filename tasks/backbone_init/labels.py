"""Object labels of ToyWorld images read from their captions: which shapes and colours they hold.

ToyWorld captions name every object by a colour word and a shape word or synonym
(``tasks/toyworld/phrases.py``: "plus sign" for a cross, "disc" for a circle...). The union
over an image's captions is its multi-hot label over the 6 shapes and 7 colours.
"""
import re
from typing import Dict, List, Sequence

from ..toyworld.phrases import SHAPE_WORDS
from ..toyworld.scene import COLOURS, SHAPES

LABELS: List[str] = [*SHAPES, *COLOURS]
_PATTERNS = [(index, re.compile(r'\b' + re.escape(word) + r's?\b'))
             for index, words in enumerate([SHAPE_WORDS[shape] for shape in SHAPES]
                                           + [(colour,) for colour in COLOURS])
             for word in set(words)]


def caption_labels(caption: str) -> List[int]:
    """Indices into :data:`LABELS` of the shapes and colours ``caption`` names."""
    text = caption.lower()
    return sorted({index for index, pattern in _PATTERNS if pattern.search(text)})


def image_labels(records: Sequence[dict]) -> Dict[str, List[int]]:
    """Image path -> label indices named by any of its captions (``{image, caption}`` records)."""
    labels: Dict[str, set] = {}
    for record in records:
        labels.setdefault(record['image'], set()).update(caption_labels(record['caption']))
    return {image: sorted(found) for image, found in labels.items()}
