"""Drawing ToyWorld scenes as RGB images (numpy backgrounds + anti-aliased PIL shapes)."""
import math

import numpy as np
from PIL import Image, ImageDraw

from .scene import DOMAINS, Background, Scene, SceneObject

SUPERSAMPLE = 4
RADIUS = {'small': 0.085, 'large': 0.14}
OUTLINE_RGB = (25, 25, 25)


def _pattern_mix(background: Background, size: int) -> np.ndarray:
    """Per-pixel weight in [0, 1] of the accent tone over the base tone."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) / size
    period = background.period
    axis = (xs, ys, (xs + ys) / math.sqrt(2))[background.direction]
    texture_rng = np.random.default_rng(background.texture_seed)
    pattern = background.pattern
    if pattern == 'stripes':
        return (np.floor(axis / period) % 2).astype(np.float64)
    if pattern == 'checker':
        return ((np.floor(xs / period) + np.floor(ys / period)) % 2).astype(np.float64)
    if pattern == 'noise':
        grain = texture_rng.random((size // 2 + 1, size // 2 + 1))
        return np.kron(grain, np.ones((2, 2)))[:size, :size]
    if pattern == 'gradient':
        return axis / axis.max()
    if pattern == 'rings':
        cx, cy = texture_rng.uniform(0.0, 1.0, size=2)
        radius = np.hypot(xs - cx, ys - cy)
        return 0.5 + 0.5 * np.sin(2 * math.pi * radius / period)
    if pattern == 'waves':
        phase = 2 * math.pi * (ys / period + 0.15 * np.sin(2 * math.pi * xs / (2 * period)))
        return 0.5 + 0.5 * np.sin(phase)
    if pattern == 'grid':
        line_width = 1.5 / size
        return ((xs % period < line_width) | (ys % period < line_width)).astype(np.float64)
    if pattern == 'blotches':
        coarse = Image.fromarray((texture_rng.random((5, 5)) * 255).astype(np.uint8))
        smooth = np.asarray(coarse.resize((size, size), Image.BICUBIC), dtype=np.float64)
        return smooth / 255.0
    raise ValueError(f'unknown background pattern {pattern!r}')


def render_background(background: Background, size: int) -> np.ndarray:
    """The background as a uint8 array of shape (size, size, 3)."""
    mix = _pattern_mix(background, size)[..., None]
    base = np.array(background.base, dtype=np.float64)
    accent = np.array(background.accent, dtype=np.float64)
    return np.clip(np.rint(base * (1 - mix) + accent * mix), 0, 255).astype(np.uint8)


def _star_points(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    points = []
    for k in range(10):
        reach = r if k % 2 == 0 else 0.45 * r
        angle = -math.pi / 2 + k * math.pi / 5
        points.append((cx + reach * math.cos(angle), cy + reach * math.sin(angle)))
    return points


def _cross_points(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    arm = 0.34 * r
    corners = [(-arm, -r), (arm, -r), (arm, -arm), (r, -arm), (r, arm), (arm, arm),
               (arm, r), (-arm, r), (-arm, arm), (-r, arm), (-r, -arm), (-arm, -arm)]
    return [(cx + dx, cy + dy) for dx, dy in corners]


def object_outline(obj: SceneObject, canvas: int) -> tuple[str, list[tuple[float, float]]]:
    """How ``obj`` is drawn on a ``canvas``-pixel square: ``('ellipse', [corner, corner])``
    for circles, else ``('polygon', points)``."""
    cx, cy, r = obj.x * canvas, obj.y * canvas, RADIUS[obj.size] * canvas
    if obj.shape == 'circle':
        return 'ellipse', [(cx - r, cy - r), (cx + r, cy + r)]
    half = 0.85 * r
    polygons = {
        'square': lambda: [(cx - half, cy - half), (cx + half, cy - half),
                           (cx + half, cy + half), (cx - half, cy + half)],
        'triangle': lambda: [(cx, cy - r), (cx + r, cy + 0.8 * r), (cx - r, cy + 0.8 * r)],
        'diamond': lambda: [(cx, cy - r), (cx + 0.7 * r, cy), (cx, cy + r), (cx - 0.7 * r, cy)],
        'star': lambda: _star_points(cx, cy, r),
        'cross': lambda: _cross_points(cx, cy, r),
    }
    return 'polygon', polygons[obj.shape]()


def object_box(obj: SceneObject) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)``: the drawn shape's bounding box in [0, 1] image coordinates."""
    _, points = object_outline(obj, 1)
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return min(xs), min(ys), max(xs), max(ys)


def _draw_object(draws: tuple[ImageDraw.ImageDraw, ImageDraw.ImageDraw], obj: SceneObject,
                 canvas: int, outlined: bool) -> None:
    """Draw ``obj`` in colour on the colour canvas and opaque on the coverage canvas."""
    kind, points = object_outline(obj, canvas)
    colour_draw, coverage_draw = draws
    for draw, fill, outline in ((colour_draw, obj.rgb, OUTLINE_RGB), (coverage_draw, 255, 255)):
        style = {'fill': fill}
        if outlined:
            style.update(outline=outline, width=SUPERSAMPLE)
        if kind == 'ellipse':
            draw.ellipse((*points[0], *points[1]), **style)
        else:
            draw.polygon(points, **style)


def render_scene(scene: Scene, size: int) -> Image.Image:
    """Draw ``scene`` as a ``size`` x ``size`` RGB image.

    Shapes are drawn at ``SUPERSAMPLE`` times the size on a black colour canvas and a
    coverage canvas, both box-filtered down: the colour canvas is then colour premultiplied
    by coverage, so ``background * (1 - coverage) + colour`` anti-aliases the edges.
    """
    canvas = size * SUPERSAMPLE
    colour = Image.new('RGB', (canvas, canvas))
    coverage = Image.new('L', (canvas, canvas))
    draws = (ImageDraw.Draw(colour), ImageDraw.Draw(coverage))
    outlined = DOMAINS[scene.domain].outlined
    for obj in scene.objects:
        _draw_object(draws, obj, canvas, outlined)
    premultiplied = np.asarray(colour.reduce(SUPERSAMPLE), dtype=np.float64)
    alpha = np.asarray(coverage.reduce(SUPERSAMPLE), dtype=np.float64)[..., None] / 255.0
    background = render_background(scene.background, size).astype(np.float64)
    pixels = background * (1.0 - alpha) + premultiplied
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
