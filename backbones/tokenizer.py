"""BLIP's tokenizer: bert-base-uncased WordPiece plus ``[DEC]`` (bos) and ``[ENC]``.

With the real bert-base-uncased vocabulary (30522 tokens) ``[DEC]`` gets id 30522 and
``[ENC]`` 30523, as in BLIP. ToyWorld ships a small vocabulary in the same format, so the
tiny models use the very same code.
"""
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from transformers import BertTokenizer

from harness.core.registry import TOKENIZERS


def resolve_vocab_file(vocab: Union[str, Path]) -> Path:
    """Path of ``vocab.txt`` given the file itself or the directory holding it."""
    path = Path(vocab).expanduser()
    if path.is_dir():
        path = path / 'vocab.txt'
    if not path.is_file():
        raise FileNotFoundError(
            f'no WordPiece vocabulary at {path}: point `vocab` at a bert-base-uncased '
            f'directory (with vocab.txt) or at the vocab.txt file itself')
    return path


@TOKENIZERS.register_module()
class BlipTokenizer:
    """Lower-casing WordPiece tokenizer with BLIP's special tokens.

    Args:
        vocab: a directory holding ``vocab.txt`` or the file itself.

    Attributes:
        pad_token_id, cls_token_id, sep_token_id (eos), bos_token_id (``[DEC]``),
        enc_token_id (``[ENC]``).
    """

    def __init__(self, vocab: Union[str, Path]):
        vocab_file = resolve_vocab_file(vocab)
        expected = sum(1 for _ in vocab_file.open(encoding='utf-8'))
        # transformers 5 silently ignores ``vocab_file=``; pass the path positionally.
        self.tokenizer = BertTokenizer(str(vocab_file), do_lower_case=True)
        if len(self.tokenizer) != expected:
            raise RuntimeError(f'{vocab_file} has {expected} entries but the tokenizer loaded '
                               f'{len(self.tokenizer)}; the installed transformers did not read it')
        self.tokenizer.add_special_tokens({'bos_token': '[DEC]'})
        self.tokenizer.add_special_tokens({'additional_special_tokens': ['[ENC]']})
        self.vocab_file = vocab_file
        self.pad_token_id = self.tokenizer.pad_token_id
        self.cls_token_id = self.tokenizer.cls_token_id
        self.sep_token_id = self.tokenizer.sep_token_id
        self.bos_token_id = self.tokenizer.convert_tokens_to_ids('[DEC]')
        self.enc_token_id = self.tokenizer.convert_tokens_to_ids('[ENC]')

    def __len__(self) -> int:
        return len(self.tokenizer)

    def __call__(self, texts: Sequence[str], max_length: int, padding: str = 'longest',
                 device=None, pad_to_multiple_of: Optional[int] = None) -> dict:
        """Tokenize ``texts`` to ``{'input_ids', 'attention_mask'}`` long tensors ``[B, L]``.

        Sequences are ``[CLS] ... [SEP]`` truncated to ``max_length``; ``padding`` is
        ``'longest'`` or ``'max_length'`` (BLIP pads to max_length in pre-training), and
        ``pad_to_multiple_of`` rounds the padded length up, to ``max_length`` at most (few
        distinct shapes).
        """
        encoded = self.tokenizer(list(texts), padding=padding, truncation=True,
                                 max_length=max_length, return_tensors='pt')
        tokens = {key: encoded[key] for key in ('input_ids', 'attention_mask')}
        if pad_to_multiple_of:
            length = tokens['input_ids'].shape[1]
            extra = min(-(-length // pad_to_multiple_of) * pad_to_multiple_of,
                        max(max_length, length)) - length
            tokens = dict(input_ids=F.pad(tokens['input_ids'], (0, extra),
                                          value=self.pad_token_id),
                          attention_mask=F.pad(tokens['attention_mask'], (0, extra), value=0))
        return {key: value.to(device) for key, value in tokens.items()}

    def decode(self, token_ids: Sequence[int]) -> str:
        """Text of ``token_ids`` without special tokens."""
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=True)

    def batch_decode(self, sequences: Union[torch.Tensor, List[List[int]]]) -> List[str]:
        """Texts of a batch of id sequences, special tokens skipped."""
        return [self.decode(ids.tolist() if torch.is_tensor(ids) else ids) for ids in sequences]
