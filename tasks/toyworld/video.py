"""Short clips of moving shapes: sampling, frames, captions, questions and mp4 writing.

Clips are H.264 (yuv420p) mp4 files written with PyAV. The encoder runs single-threaded with
no B-frames and no rate-control look-ahead: with those x264 settings the bytes are
reproducible (with look-ahead they were not, in a test here).
"""
import dataclasses
import fractions
import pathlib
from typing import Optional

import numpy as np

from harness.core.optional import require

from .phrases import background_phrase, humanise, object_phrase, pick
from .questions import KINDS, sample_questions
from .render import render_scene
from .scene import DOMAINS, Scene, SceneObject, sample_background, sample_distinct_kinds, \
    sample_object

DIRECTIONS = {'left': (-1.0, 0.0), 'right': (1.0, 0.0), 'up': (0.0, -1.0), 'down': (0.0, 1.0)}
DIRECTION_PHRASES = {
    'left': ('moves from right to left', 'slides to the left', 'travels leftward'),
    'right': ('moves from left to right', 'slides to the right', 'travels rightward'),
    'up': ('moves upward', 'rises from the bottom to the top', 'slides up'),
    'down': ('moves downward', 'falls from the top to the bottom', 'slides down'),
}
STILL_PHRASES = ('stays still', 'does not move', 'remains in place')
ENCODER_OPTIONS = {'crf': '18', 'preset': 'veryfast', 'threads': '1',
                   'x264-params': 'bframes=0:rc-lookahead=0'}


@dataclasses.dataclass(frozen=True)
class Mover:
    """An object and its straight path; ``direction`` is None for a still object."""

    obj: SceneObject
    direction: Optional[str]
    start: tuple[float, float]
    end: tuple[float, float]


@dataclasses.dataclass(frozen=True)
class Clip:
    """A whole clip: a background and one or two objects, at least one moving."""

    scene: Scene
    movers: tuple[Mover, ...]


def _path(rng: np.random.Generator, direction: Optional[str], lane: float):
    if direction is None:
        point = (float(rng.uniform(0.25, 0.75)), lane)
        return point, point
    dx, dy = DIRECTIONS[direction]
    if dx:
        return (0.5 - 0.3 * dx, lane), (0.5 + 0.3 * dx, lane)
    return (lane, 0.5 - 0.3 * dy), (lane, 0.5 + 0.3 * dy)


def sample_clip(rng: np.random.Generator) -> Clip:
    """Draw a clip of one or two objects on separate lanes, the first one moving."""
    domain = DOMAINS['coco']
    count = int(rng.integers(1, 3))
    lanes = (0.3, 0.7) if rng.random() < 0.5 else (0.7, 0.3)
    movers = []
    for k, (shape, colour) in enumerate(sample_distinct_kinds(rng, count)):
        direction = str(rng.choice(list(DIRECTIONS))) if k == 0 or rng.random() < 0.5 else None
        start, end = _path(rng, direction, lanes[k])
        obj = sample_object(rng, domain, shape, colour, *start)
        movers.append(Mover(obj, direction, start, end))
    scene = Scene('coco', sample_background(rng, domain), tuple(m.obj for m in movers))
    return Clip(scene, tuple(movers))


def render_frames(clip: Clip, frames: int, size: int) -> list[np.ndarray]:
    """The clip as ``frames`` RGB uint8 arrays of shape (size, size, 3)."""
    images = []
    for t in np.linspace(0.0, 1.0, frames):
        objects = tuple(dataclasses.replace(m.obj,
                                            x=m.start[0] + t * (m.end[0] - m.start[0]),
                                            y=m.start[1] + t * (m.end[1] - m.start[1]))
                        for m in clip.movers)
        scene = dataclasses.replace(clip.scene, objects=objects)
        images.append(np.asarray(render_scene(scene, size)))
    return images


def _motion(mover: Mover, rng: np.random.Generator) -> str:
    phrases = STILL_PHRASES if mover.direction is None else DIRECTION_PHRASES[mover.direction]
    return f'{object_phrase(mover.obj, rng)} {pick(rng, phrases)}'


def clip_caption(clip: Clip, rng: np.random.Generator) -> str:
    """One caption describing how each object moves."""
    text = _motion(clip.movers[0], rng)
    if len(clip.movers) > 1:
        text += pick(rng, (' while ', ', and ', ' as ')) + _motion(clip.movers[1], rng)
    if rng.random() < 0.4:
        text += f' on {background_phrase(clip.scene.background.pattern, rng)}'
    return humanise(text, rng)


# Every image question kind whose answer holds in every frame: objects keep their colour,
# shape and size, the background stays, but moving objects change their relations.
SCENE_QUESTION_KINDS = tuple(kind for kind in KINDS if kind != 'relation')


def clip_scene_questions(clip: Clip, rng: np.random.Generator, count: int
                         ) -> list[tuple[str, str]]:
    """Up to ``count`` (question, answer) pairs by the image question generator.

    The questions are the image VQA questions' (same grammar and answers) about the clip's
    objects and background, so a VQA model trained on images can answer them from frames.
    """
    return [(q.text, q.answer)
            for q in sample_questions(clip.scene, rng, count, SCENE_QUESTION_KINDS)]


def clip_motion_questions(clip: Clip, rng: np.random.Generator, count: int
                          ) -> list[tuple[str, str]]:
    """Up to ``count`` (question, answer) pairs about the objects and their motion."""
    moving = [m for m in clip.movers if m.direction is not None]
    candidates = [('how many objects are there?', str(len(clip.movers)))]
    for mover in moving:
        name = f'{mover.obj.colour} {mover.obj.shape}'
        candidates.append((f'which direction does the {name} move?', mover.direction))
        alike = [m for m in moving if (m.obj.shape, m.direction) == (mover.obj.shape,
                                                                     mover.direction)]
        if len(alike) == 1:
            candidates.append((f'what color is the {mover.obj.shape} moving '
                               f'{mover.direction}?', mover.obj.colour))
    if len(moving) == 1:
        candidates.append(('what shape is moving?', moving[0].obj.shape))
    order = rng.permutation(len(candidates))[:count]
    return [candidates[i] for i in sorted(order)]


def write_mp4(path: pathlib.Path, frames: list[np.ndarray], fps: int) -> None:
    """Encode RGB frames as an H.264 yuv420p mp4 (reproducible bytes)."""
    height, width = frames[0].shape[:2]
    av = require('av', 'writing ToyWorld video clips (PyAV)')
    with av.open(str(path), mode='w') as container:
        stream = container.add_stream('libx264', rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, 'yuv420p'
        stream.options = dict(ENCODER_OPTIONS)
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format='rgb24')
            frame.pts, frame.time_base = index, fractions.Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
