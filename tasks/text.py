"""BLIP's text cleaning for captions and questions.

BLIP lower-cases every text and removes the characters ``.!"()*#:;~`` before tokenising;
captions get those characters replaced by spaces (then runs of spaces collapsed), questions
get them deleted. Both are cut to a maximum number of space-separated words.
"""
import re

_BLIP_PUNCTUATION = re.compile(r'[.!"()*#:;~]')
_SPACE_RUNS = re.compile(r'\s{2,}')


def _truncate_words(text: str, max_words: int) -> str:
    words = text.split(' ')
    return ' '.join(words[:max_words]) if len(words) > max_words else text


def pre_caption(caption: str, max_words: int = 50) -> str:
    """Clean a caption the way BLIP does and keep at most ``max_words`` words."""
    cleaned = _BLIP_PUNCTUATION.sub(' ', caption.lower())
    cleaned = _SPACE_RUNS.sub(' ', cleaned)
    cleaned = cleaned.rstrip('\n').strip(' ')
    return _truncate_words(cleaned, max_words)


def pre_question(question: str, max_words: int = 50) -> str:
    """Clean a VQA question the way BLIP does and keep at most ``max_words`` words."""
    cleaned = _BLIP_PUNCTUATION.sub('', question.lower()).rstrip(' ')
    return _truncate_words(cleaned, max_words)
