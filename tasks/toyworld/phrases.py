"""The words ToyWorld texts are made of: synonyms for shapes, sizes, patterns, places."""
import numpy as np

from .scene import SceneObject

SHAPE_WORDS = {
    'circle': ('circle', 'circle', 'disc', 'round shape', 'dot'),
    'square': ('square', 'square', 'box', 'block'),
    'triangle': ('triangle', 'triangle', 'triangular shape'),
    'star': ('star', 'star', 'five-pointed star'),
    'cross': ('cross', 'cross', 'plus sign'),
    'diamond': ('diamond', 'diamond', 'rhombus'),
}
SHAPE_PLURALS = {'circle': 'circles', 'square': 'squares', 'triangle': 'triangles',
                 'star': 'stars', 'cross': 'crosses', 'diamond': 'diamonds'}
SIZE_WORDS = {'small': ('small', 'little', 'tiny'), 'large': ('large', 'big', 'huge')}
PATTERN_ADJECTIVES = {
    'stripes': ('striped', 'stripy', 'lined'),
    'checker': ('checkered', 'checkerboard', 'chequered'),
    'noise': ('speckled', 'grainy', 'noisy'),
    'gradient': ('gradient', 'shaded', 'fading'),
    'rings': ('ringed', 'swirly', 'concentric'),
    'waves': ('wavy', 'rippled', 'undulating'),
    'grid': ('grid', 'gridded', 'tiled'),
    'blotches': ('blotchy', 'mottled', 'cloudy'),
}
PATTERN_ANSWERS = {'stripes': 'stripes', 'checker': 'checkered', 'noise': 'speckled',
                   'gradient': 'gradient', 'rings': 'rings', 'waves': 'waves', 'grid': 'grid',
                   'blotches': 'blotches'}
BACKGROUND_NOUNS = ('background', 'background', 'backdrop', 'pattern')
POSITION_PHRASES = {
    'top left': ('in the top left corner', 'at the top left', 'in the upper left'),
    'top': ('at the top', 'near the top', 'in the upper part'),
    'top right': ('in the top right corner', 'at the top right', 'in the upper right'),
    'left': ('on the left', 'on the left side', 'at the left'),
    'middle': ('in the middle', 'in the center', 'at the center'),
    'right': ('on the right', 'on the right side', 'at the right'),
    'bottom left': ('in the bottom left corner', 'at the bottom left', 'in the lower left'),
    'bottom': ('at the bottom', 'near the bottom', 'in the lower part'),
    'bottom right': ('in the bottom right corner', 'at the bottom right',
                     'in the lower right'),
}
RELATION_PHRASES = {
    'left': ('to the left of', 'left of', 'on the left of'),
    'right': ('to the right of', 'right of', 'on the right of'),
    'above': ('above', 'over', 'higher than'),
    'below': ('below', 'under', 'beneath', 'underneath'),
}
RELATION_ANSWERS = {'left': 'to the left of', 'right': 'to the right of', 'above': 'above',
                    'below': 'below'}
NUMBER_WORDS = {1: 'one', 2: 'two', 3: 'three'}
COLLECTIVE_NOUNS = ('shapes', 'objects', 'figures', 'items')


def pick(rng: np.random.Generator, options) -> str:
    """One option, uniformly."""
    return options[int(rng.integers(len(options)))]


def with_article(phrase: str) -> str:
    """``phrase`` preceded by 'a' or 'an'."""
    return ('an ' if phrase[0] in 'aeiou' else 'a ') + phrase


def object_phrase(obj: SceneObject, rng: np.random.Generator, article: bool = True) -> str:
    """A noun phrase for an object, e.g. 'a big red circle' (size said half the time)."""
    words = [pick(rng, SIZE_WORDS[obj.size])] if rng.random() < 0.5 else []
    words += [obj.colour, pick(rng, SHAPE_WORDS[obj.shape])]
    phrase = ' '.join(words)
    if not article:
        return phrase
    return 'one ' + phrase if rng.random() < 0.1 else with_article(phrase)


def join_list(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(items) == 1:
        return items[0]
    return ', '.join(items[:-1]) + ' and ' + items[-1]


def background_phrase(pattern: str, rng: np.random.Generator) -> str:
    """'a striped background', 'a wavy backdrop', ..."""
    return with_article(f'{pick(rng, PATTERN_ADJECTIVES[pattern])} '
                        f'{pick(rng, BACKGROUND_NOUNS)}')


def humanise(text: str, rng: np.random.Generator) -> str:
    """Capitalise and end with a period some of the time, as people type."""
    if rng.random() < 0.6:
        text = text[0].upper() + text[1:]
    return text + '.' if rng.random() < 0.4 else text
