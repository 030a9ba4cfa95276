"""Question/answer pairs about a scene, shared by the VQAv2 and GQA writers.

Every question refers to objects by a description that is unique in the scene, so each has
exactly one correct answer.
"""
import dataclasses
from typing import Optional

import numpy as np

from .phrases import PATTERN_ANSWERS, RELATION_ANSWERS, SHAPE_PLURALS
from .scene import COLOURS, RELATIONS, SHAPES, Scene, SceneObject, holds

KINDS = ('color', 'shape', 'count', 'exist', 'relation', 'size', 'background')


@dataclasses.dataclass(frozen=True)
class Question:
    """One question with its answer; ``kind`` is one of :data:`KINDS`."""

    kind: str
    text: str
    answer: str
    full_answer: str


def _unique(scene: Scene, obj: SceneObject, attributes: tuple[str, ...]) -> bool:
    key = tuple(getattr(obj, a) for a in attributes)
    return sum(tuple(getattr(o, a) for a in attributes) == key for o in scene.objects) == 1


def refer(scene: Scene, obj: SceneObject, avoid: str = '') -> Optional[str]:
    """The shortest unique description of ``obj`` that does not use attribute ``avoid``."""
    options = (
        (('shape',), lambda: f'the {obj.shape}'),
        (('colour',), lambda: f'the {obj.colour} object'),
        (('size', 'shape'), lambda: f'the {obj.size} {obj.shape}'),
        (('colour', 'shape'), lambda: f'the {obj.colour} {obj.shape}'),
    )
    for attributes, describe in options:
        if avoid not in attributes and _unique(scene, obj, attributes):
            return describe()
    return None


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + '.'


def _attribute_questions(scene: Scene) -> list[Question]:
    questions = []
    for obj in scene.objects:
        ref = refer(scene, obj, avoid='colour')
        if ref:
            questions.append(Question('color', f'What color is {ref}?', obj.colour,
                                      _sentence(f'{ref} is {obj.colour}')))
        ref = refer(scene, obj, avoid='shape')
        if ref:
            questions.append(Question('shape', f'What shape is {ref}?', obj.shape,
                                      _sentence(f'{ref} is a {obj.shape}')))
        ref = refer(scene, obj, avoid='size')
        if ref:
            questions.append(Question('size', f'Is {ref} small or large?', obj.size,
                                      _sentence(f'{ref} is {obj.size}')))
    return questions


def _count_questions(scene: Scene, rng: np.random.Generator) -> list[Question]:
    total = len(scene.objects)
    noun = 'shape' if total == 1 else 'shapes'
    verb = 'is' if total == 1 else 'are'
    questions = [Question('count', 'How many shapes are there?', str(total),
                          f'There {verb} {total} {noun}.')]
    colour = str(rng.choice(COLOURS))
    number = sum(o.colour == colour for o in scene.objects)
    questions.append(Question('count', f'How many {colour} objects are there?', str(number),
                              f'There {"is" if number == 1 else "are"} {number} {colour} '
                              f'{"object" if number == 1 else "objects"}.'))
    shape = str(rng.choice(SHAPES))
    number = sum(o.shape == shape for o in scene.objects)
    questions.append(Question('count', f'How many {SHAPE_PLURALS[shape]} are there?',
                              str(number), f'There {"is" if number == 1 else "are"} {number} '
                              f'{shape if number == 1 else SHAPE_PLURALS[shape]}.'))
    return questions


def _exist_questions(scene: Scene, rng: np.random.Generator) -> list[Question]:
    present = scene.objects[int(rng.integers(len(scene.objects)))]
    kinds = {(o.colour, o.shape) for o in scene.objects}
    absent = [(c, s) for s in SHAPES for c in COLOURS if (c, s) not in kinds]
    colour, shape = absent[int(rng.integers(len(absent)))]
    return [
        Question('exist', f'Is there a {present.colour} {present.shape}?', 'yes',
                 f'Yes, there is a {present.colour} {present.shape}.'),
        Question('exist', f'Is there a {colour} {shape}?', 'no',
                 f'No, there is no {colour} {shape}.'),
    ]


def _relation_questions(scene: Scene) -> list[Question]:
    questions = []
    for anchor in scene.objects:
        ref = refer(scene, anchor)
        for relation in RELATIONS:
            related = [o for o in scene.objects if o is not anchor and holds(relation, o, anchor)]
            if len(related) != 1:
                continue
            target, where = related[0], RELATION_ANSWERS[relation]
            questions.append(Question('relation', f'What shape is {where} {ref}?', target.shape,
                                      _sentence(f'the {target.shape} is {where} {ref}')))
            questions.append(Question('relation', f'What color is the shape {where} {ref}?',
                                      target.colour,
                                      _sentence(f'the shape {where} {ref} is {target.colour}')))
    return questions


def candidate_questions(scene: Scene, rng: np.random.Generator) -> list[Question]:
    """Every question the generator can ask about ``scene``."""
    pattern = PATTERN_ANSWERS[scene.background.pattern]
    background = Question('background', 'What pattern is the background?', pattern,
                          f'The background is {pattern}.')
    return (_attribute_questions(scene) + _count_questions(scene, rng)
            + _exist_questions(scene, rng) + _relation_questions(scene) + [background])


def sample_questions(scene: Scene, rng: np.random.Generator, count: int,
                     allowed: tuple[str, ...] = KINDS) -> list[Question]:
    """Up to ``count`` distinct questions of the ``allowed`` kinds, spread over as many kinds
    as possible."""
    by_kind: dict[str, list[Question]] = {}
    for question in candidate_questions(scene, rng):
        if question.kind in allowed and all(question.text != q.text
                                            for q in by_kind.get(question.kind, [])):
            by_kind.setdefault(question.kind, []).append(question)
    for questions in by_kind.values():
        order = rng.permutation(len(questions))
        questions[:] = [questions[i] for i in order]
    kinds = [KINDS[i] for i in rng.permutation(len(KINDS)) if KINDS[i] in by_kind]
    chosen: list[Question] = []
    while len(chosen) < count and any(by_kind[k] for k in kinds):
        for kind in kinds:
            if by_kind[kind] and len(chosen) < count:
                chosen.append(by_kind[kind].pop(0))
    return chosen
