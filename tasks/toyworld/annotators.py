"""Ten simulated VQA annotators per question, who mostly agree but not always.

Real VQAv2 answers disagree: synonyms ('ball' for circle), near colours, off-by-one counts,
flipped yes/no. The majority answer stays the correct one (at most 4 of 10 dissent), so the
official VQA accuracy of the correct answer is 1.
"""
import numpy as np

from .phrases import pick
from .questions import Question

ANNOTATORS = 10
DISSENT_PROBABILITIES = (0.45, 0.25, 0.15, 0.1, 0.05)  # for 0..4 dissenting annotators

CONFUSIONS = {
    'red': ('orange', 'pink', 'dark red'), 'orange': ('red', 'yellow'),
    'yellow': ('orange', 'gold'), 'green': ('dark green', 'blue'),
    'blue': ('purple', 'dark blue', 'light blue'), 'purple': ('blue', 'pink', 'violet'),
    'white': ('gray', 'silver'),
    'circle': ('ball', 'dot', 'oval'), 'square': ('box', 'rectangle', 'block'),
    'triangle': ('pyramid', 'arrow'), 'star': ('starfish', 'sun'), 'cross': ('plus', 'x'),
    'diamond': ('rhombus', 'square', 'kite'),
    'small': ('large', 'medium', 'tiny'), 'large': ('small', 'medium', 'big'),
    'yes': ('no',), 'no': ('yes',),
    'stripes': ('lines', 'striped'), 'checkered': ('checkerboard', 'squares'),
    'speckled': ('noise', 'dots', 'grainy'), 'gradient': ('plain', 'shaded'),
    'rings': ('circles', 'swirls'), 'waves': ('wavy', 'lines'), 'grid': ('squares', 'lines'),
    'blotches': ('clouds', 'spots'),
}
UNSURE_ANSWERS = ('not sure', 'unknown')


def wrong_answer(answer: str, rng: np.random.Generator) -> str:
    """A plausible mistake an annotator could make for ``answer``."""
    if rng.random() < 0.05:
        return pick(rng, UNSURE_ANSWERS)
    if answer.isdigit():
        number = int(answer)
        return str(number + 1 if number == 0 or rng.random() < 0.5 else number - 1)
    return pick(rng, CONFUSIONS[answer])


def annotate(question: Question, rng: np.random.Generator) -> list[dict]:
    """The ten VQAv2 ``answers`` entries (answer, answer_confidence, answer_id)."""
    dissent = int(rng.choice(len(DISSENT_PROBABILITIES), p=DISSENT_PROBABILITIES))
    dissenters = set(rng.choice(ANNOTATORS, size=dissent, replace=False).tolist())
    answers = []
    for annotator in range(ANNOTATORS):
        if annotator in dissenters:
            answer = wrong_answer(question.answer, rng)
            confidence = pick(rng, ('maybe', 'no', 'yes'))
        else:
            answer = question.answer
            confidence = 'yes' if rng.random() < 0.9 else 'maybe'
        answers.append({'answer': answer, 'answer_confidence': confidence,
                        'answer_id': annotator + 1})
    return answers


def possible_answers() -> list[str]:
    """Every answer an annotator can give (correct ones and mistakes), sorted."""
    answers = set(CONFUSIONS) | set(UNSURE_ANSWERS) | {str(n) for n in range(5)}
    for mistakes in CONFUSIONS.values():
        answers.update(mistakes)
    return sorted(answers)
