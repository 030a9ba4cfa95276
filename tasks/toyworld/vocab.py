"""A BERT-format WordPiece vocabulary covering every ToyWorld text, for tiny text models.

``vocab.txt`` lists ``[PAD] [UNK] [CLS] [SEP] [MASK]`` (ids 0-4), then, sorted: every word of
every text after BLIP's cleaning, the punctuation marks BLIP keeps (``?``, ``,``, ``-``...),
and single letters/digits with their ``##`` continuations, so unseen lower-case words still
tokenise into pieces rather than ``[UNK]``. Load it with ``BertTokenizer(<path of vocab.txt>)``.
"""
import pathlib
import re
import string

from ..text import pre_caption

SPECIAL_TOKENS = ('[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]')
_WORDS_AND_PUNCTUATION = re.compile(r'[a-z0-9]+|[^a-z0-9\s]')
_CHARACTERS = string.ascii_lowercase + string.digits


def vocabulary(texts) -> list[str]:
    """The vocabulary for ``texts``: special tokens first, then the sorted token set."""
    tokens = set(_CHARACTERS) | {'##' + c for c in _CHARACTERS}
    for text in texts:
        tokens.update(_WORDS_AND_PUNCTUATION.findall(pre_caption(text, max_words=10**6)))
    return list(SPECIAL_TOKENS) + sorted(tokens - set(SPECIAL_TOKENS))


def write_vocab(path: pathlib.Path, texts) -> None:
    """Write ``vocab.txt`` (one token per line) for ``texts``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(token + '\n' for token in vocabulary(texts)), encoding='utf-8')
