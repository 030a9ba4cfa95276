"""What a ToyWorld scene is: 1-3 coloured shapes on a textured background.

Two visual domains share the same objects: ``coco`` (stripes/checker/noise/gradient
backgrounds, flat bright shapes) and ``flickr`` (rings/waves/grid/blotch backgrounds, deeper
palette, outlined shapes), so a model trained on one can be tested zero-shot on the other.
Positions live on a 3x3 grid of cells; spatial relations compare cells.
"""
import dataclasses

import numpy as np

SHAPES = ('circle', 'square', 'triangle', 'star', 'cross', 'diamond')
COLOURS = ('red', 'orange', 'yellow', 'green', 'blue', 'purple', 'white')
SIZES = ('small', 'large')
RELATIONS = ('left', 'right', 'above', 'below')
GRID = 3

RGB = tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class Domain:
    """The look of one visual domain: object palette, background patterns and tones."""

    name: str
    palette: dict[str, RGB]
    patterns: tuple[str, ...]
    background_tones: tuple[RGB, ...]
    outlined: bool


DOMAINS = {
    'coco': Domain(
        name='coco',
        palette={'red': (220, 30, 30), 'orange': (255, 140, 0), 'yellow': (250, 230, 20),
                 'green': (30, 180, 50), 'blue': (30, 80, 230), 'purple': (150, 40, 200),
                 'white': (250, 250, 250)},
        patterns=('stripes', 'checker', 'noise', 'gradient'),
        background_tones=((128, 128, 128), (150, 140, 120), (110, 115, 125), (95, 95, 90)),
        outlined=False),
    'flickr': Domain(
        name='flickr',
        palette={'red': (190, 35, 55), 'orange': (225, 115, 35), 'yellow': (230, 200, 55),
                 'green': (35, 140, 75), 'blue': (45, 85, 190), 'purple': (125, 55, 165),
                 'white': (238, 236, 225)},
        patterns=('rings', 'waves', 'grid', 'blotches'),
        background_tones=((90, 120, 120), (135, 115, 90), (100, 95, 120), (120, 130, 100)),
        outlined=True),
}


@dataclasses.dataclass(frozen=True)
class SceneObject:
    """One shape; ``x``/``y`` are its centre in [0, 1] image coordinates."""

    shape: str
    colour: str
    size: str
    x: float
    y: float
    rgb: RGB

    @property
    def cell(self) -> tuple[int, int]:
        """(row, column) of the 3x3 grid cell holding the centre."""
        return min(int(self.y * GRID), GRID - 1), min(int(self.x * GRID), GRID - 1)


@dataclasses.dataclass(frozen=True)
class Background:
    """A textured background: pattern name, two tones and the pattern's parameters."""

    pattern: str
    base: RGB
    accent: RGB
    period: float
    direction: int
    texture_seed: int


@dataclasses.dataclass(frozen=True)
class Scene:
    """A whole image: its domain, background and objects (distinct colour+shape pairs)."""

    domain: str
    background: Background
    objects: tuple[SceneObject, ...]


def holds(relation: str, a: SceneObject, b: SceneObject) -> bool:
    """Whether ``a`` is ``relation`` ('left', 'right', 'above', 'below') of ``b``."""
    (row_a, col_a), (row_b, col_b) = a.cell, b.cell
    return {'left': col_a < col_b, 'right': col_a > col_b,
            'above': row_a < row_b, 'below': row_a > row_b}[relation]


def main_relation(a: SceneObject, b: SceneObject) -> str:
    """The relation of ``a`` to ``b`` along the axis where they differ most."""
    (row_a, col_a), (row_b, col_b) = a.cell, b.cell
    if abs(col_a - col_b) >= abs(row_a - row_b):
        return 'left' if col_a < col_b else 'right'
    return 'above' if row_a < row_b else 'below'


def position_name(obj: SceneObject) -> str:
    """Where an object sits: 'top left', 'top', ..., 'middle', ..., 'bottom right'."""
    row, col = obj.cell
    vertical = ('top', '', 'bottom')[row]
    horizontal = ('left', '', 'right')[col]
    return ' '.join(word for word in (vertical, horizontal) if word) or 'middle'


def _jitter_rgb(rng: np.random.Generator, rgb: RGB, amount: int) -> RGB:
    shifted = np.clip(np.array(rgb) + rng.integers(-amount, amount + 1, size=3), 0, 255)
    return tuple(int(v) for v in shifted)


def sample_background(rng: np.random.Generator, domain: Domain) -> Background:
    """Draw a background pattern and its tones for ``domain``."""
    base = _jitter_rgb(rng, domain.background_tones[rng.integers(len(domain.background_tones))],
                       20)
    contrast = int(rng.integers(22, 45)) * (1 if rng.random() < 0.5 else -1)
    accent = tuple(int(np.clip(v + contrast, 0, 255)) for v in base)
    return Background(pattern=str(rng.choice(domain.patterns)), base=base, accent=accent,
                      period=float(rng.uniform(0.08, 0.2)), direction=int(rng.integers(3)),
                      texture_seed=int(rng.integers(2**31)))


def sample_object(rng: np.random.Generator, domain: Domain, shape: str, colour: str,
                  x: float, y: float) -> SceneObject:
    """Make one object of the given shape and colour at (x, y) with a random size."""
    return SceneObject(shape=shape, colour=colour, size=str(rng.choice(SIZES)), x=x, y=y,
                       rgb=_jitter_rgb(rng, domain.palette[colour], 12))


def sample_distinct_kinds(rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
    """``count`` distinct (shape, colour) pairs."""
    pairs = [(shape, colour) for shape in SHAPES for colour in COLOURS]
    picks = rng.choice(len(pairs), size=count, replace=False)
    return [pairs[i] for i in picks]


def sample_scene(rng: np.random.Generator, domain_name: str) -> Scene:
    """Draw a random scene of 1-3 objects in distinct grid cells."""
    domain = DOMAINS[domain_name]
    count = int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3]))
    cells = rng.choice(GRID * GRID, size=count, replace=False)
    objects = []
    for (shape, colour), cell in zip(sample_distinct_kinds(rng, count), cells):
        row, col = divmod(int(cell), GRID)
        x = (col + 0.5) / GRID + rng.uniform(-0.05, 0.05)
        y = (row + 0.5) / GRID + rng.uniform(-0.05, 0.05)
        objects.append(sample_object(rng, domain, shape, colour, float(x), float(y)))
    return Scene(domain=domain_name, background=sample_background(rng, domain),
                 objects=tuple(objects))
