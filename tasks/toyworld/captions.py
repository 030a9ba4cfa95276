"""Human-like captions (two styles, for the two domains) and web alt-text captions."""
from typing import Callable, Optional

import numpy as np

from .phrases import (COLLECTIVE_NOUNS, NUMBER_WORDS, PATTERN_ADJECTIVES, POSITION_PHRASES,
                      RELATION_PHRASES, SHAPE_WORDS, background_phrase, humanise, join_list,
                      object_phrase, pick)
from .scene import Scene, main_relation, position_name

Template = Callable[[Scene, np.random.Generator], Optional[str]]


def _objects(scene: Scene, rng: np.random.Generator) -> str:
    order = rng.permutation(len(scene.objects))
    return join_list([object_phrase(scene.objects[i], rng) for i in order])


def _background(scene: Scene, rng: np.random.Generator) -> str:
    return background_phrase(scene.background.pattern, rng)


def _placed(scene: Scene, rng: np.random.Generator) -> str:
    """Each object with its position: 'a red circle on the left and a star at the top'."""
    order = rng.permutation(len(scene.objects))
    return join_list([f'{object_phrase(scene.objects[i], rng)} '
                      f'{pick(rng, POSITION_PHRASES[position_name(scene.objects[i])])}'
                      for i in order])


def _related_pair(scene: Scene, rng: np.random.Generator) -> Optional[str]:
    """'a red circle to the left of a blue star' for two random objects, if there are two."""
    if len(scene.objects) < 2:
        return None
    first, second = (scene.objects[i] for i in rng.choice(len(scene.objects), 2, replace=False))
    relation = pick(rng, RELATION_PHRASES[main_relation(first, second)])
    return f'{object_phrase(first, rng)} {relation} {object_phrase(second, rng)}'


def _count_phrase(scene: Scene, rng: np.random.Generator) -> str:
    if len(scene.objects) == 1:
        return 'a single ' + object_phrase(scene.objects[0], rng, article=False)
    return f'{NUMBER_WORDS[len(scene.objects)]} {pick(rng, COLLECTIVE_NOUNS)}'


def _coco_on_background(scene, rng):
    return f'{_objects(scene, rng)} on {_background(scene, rng)}'


def _coco_there_is(scene, rng):
    verb = 'is' if len(scene.objects) == 1 else 'are'
    return f'there {verb} {_placed(scene, rng)}'


def _coco_background_with(scene, rng):
    return f'{_background(scene, rng)} with {_placed(scene, rng)}'


def _coco_relation(scene, rng):
    pair = _related_pair(scene, rng)
    if pair is None:
        return None
    return pair if rng.random() < 0.5 else f'{pair} on {_background(scene, rng)}'


def _coco_count(scene, rng):
    if len(scene.objects) == 1:
        return f'{_count_phrase(scene, rng)} against {_background(scene, rng)}'
    return f'{_count_phrase(scene, rng)} on {_background(scene, rng)}, ' \
           f'{_objects(scene, rng)}'


def _coco_picture_of(scene, rng):
    opener = pick(rng, ('a picture of', 'an image showing', 'a drawing of', 'a photo of'))
    return f'{opener} {_objects(scene, rng)}'


def _coco_positions(scene, rng):
    return _placed(scene, rng)


COCO_TEMPLATES: tuple[Template, ...] = (
    _coco_on_background, _coco_there_is, _coco_background_with, _coco_relation, _coco_count,
    _coco_picture_of, _coco_positions)


def _flickr_drawn(scene, rng):
    return f'someone has drawn {_objects(scene, rng)} over {_background(scene, rng)}'


def _flickr_shown(scene, rng):
    verb = 'is' if len(scene.objects) == 1 else 'are'
    return f'{_objects(scene, rng)} {verb} shown against {_background(scene, rng)}'


def _flickr_close_up(scene, rng):
    return f'close up of {_objects(scene, rng)}'


def _flickr_this_image(scene, rng):
    return f'this image has {_placed(scene, rng)}'


def _flickr_placed(scene, rng):
    pair = _related_pair(scene, rng)
    return None if pair is None else f'{pair}, all on {_background(scene, rng)}'


def _flickr_surface(scene, rng):
    adjective = pick(rng, PATTERN_ADJECTIVES[scene.background.pattern])
    return f'a {adjective} surface with {_objects(scene, rng)} on it'


def _flickr_count(scene, rng):
    return f'{_count_phrase(scene, rng)} appear on {_background(scene, rng)}' \
        if len(scene.objects) > 1 else f'{_count_phrase(scene, rng)} sits alone'


FLICKR_TEMPLATES: tuple[Template, ...] = (
    _flickr_drawn, _flickr_shown, _flickr_close_up, _flickr_this_image, _flickr_placed,
    _flickr_surface, _flickr_count)

STYLE_TEMPLATES = {'coco': COCO_TEMPLATES, 'flickr': FLICKR_TEMPLATES}


def human_captions(scene: Scene, rng: np.random.Generator, count: int) -> list[str]:
    """``count`` distinct captions in the scene's domain style, each from a varied template."""
    templates = STYLE_TEMPLATES[scene.domain]
    captions: list[str] = []
    seen: set[str] = set()
    for attempt in range(50 * count):
        if len(captions) == count:
            break
        if attempt % len(templates) == 0:
            order = rng.permutation(len(templates))
        caption = templates[order[attempt % len(templates)]](scene, rng)
        if caption is not None and caption not in seen:
            seen.add(caption)
            captions.append(humanise(caption, rng))
    if len(captions) < count:
        raise RuntimeError(f'could not write {count} distinct captions for {scene}')
    return captions


def _web_object(obj, rng) -> str:
    return f'{obj.colour} {pick(rng, SHAPE_WORDS[obj.shape])}'


def web_caption(scene: Scene, rng: np.random.Generator) -> str:
    """An alt-text style caption naming every object's colour and shape."""
    objects = join_list([_web_object(obj, rng) for obj in scene.objects])
    adjective = pick(rng, PATTERN_ADJECTIVES[scene.background.pattern])
    forms = (f'{objects} {adjective} background',
             f'stock image of {objects}',
             f'{objects} clip art',
             f'{objects} on {adjective} background - free vector',
             f'wallpaper with {objects}',
             f'abstract {adjective} background with {objects}',
             f'{objects} pattern design')
    return pick(rng, forms)
