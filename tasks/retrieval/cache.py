"""On-disk cache of a retrieval evaluation: features, re-ranked blocks, final scores.

Layout under ``<work_dir>/retrieval_cache/<key>-<digest>/``::

    features.pt                      image_feats, text_feats, sims, text tokens
    k<k>/blocks<block_size>/block_NNNNN.pt   ITM logits of one block of images (resume)
    k<k>/scores.pt                   the finished i2t / t2i score matrices

``<key>`` names the model (a checkpoint hash given by the caller, or a hash of its weights:
:func:`tasks.cache_keys.results_key`); ``<digest>`` also covers the split's inputs (image
files, preprocessing, annotation files), texts and ground truth, the text length and the
numeric precision, so a changed model, split or setting never reuses stale files. Every
file is written to a temporary name and moved into place, so an interrupted run leaves only
complete files; tensors are loaded with ``weights_only=True``.
"""
import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Dict, Optional, Union

import torch

from ..cache_keys import dataset_identity
from .scores import RetrievalScores

CACHE_DIRNAME = 'retrieval_cache'


def evaluation_digest(dataset, max_text_length: int, precision: str) -> str:
    """A hash of what besides the model decides the scores: the split's inputs
    (:func:`tasks.cache_keys.dataset_identity`: images, preprocessing, annotation files),
    its texts and ground truth, and the settings."""
    digest = hashlib.blake2b(digest_size=8)
    settings = f'{dataset_identity(dataset)}:{max_text_length}:{precision}\n'
    digest.update(settings.encode())
    digest.update('\n'.join(dataset.texts).encode())
    digest.update(repr(list(dataset.txt2img)).encode())
    return digest.hexdigest()


def _readable(key: str) -> str:
    """``key`` reduced to characters safe in a folder name (at most 48 of them)."""
    return re.sub(r'[^A-Za-z0-9._-]+', '_', key)[:48]


class RetrievalCache:
    """The cache files of one (model, split, settings, k); a no-op when ``root`` is None.

    Args:
        root: the evaluation's folder, or None to cache nothing.
        k: re-ranking depth.
        block_size: images per re-ranking block.
    """

    def __init__(self, root: Optional[Path], k: int, block_size: int):
        self.root = root
        self.k = k
        self.block_size = block_size

    @classmethod
    def for_evaluation(cls, work_dir: Union[str, Path], cache_key: str, digest: str,
                       k: int, block_size: int) -> 'RetrievalCache':
        """The cache of an evaluation under ``work_dir``."""
        unique = hashlib.blake2b((cache_key + digest).encode(), digest_size=8).hexdigest()
        name = f'{_readable(cache_key)}-{unique}'
        return cls(Path(work_dir) / CACHE_DIRNAME / name, k, block_size)

    @property
    def enabled(self) -> bool:
        """Whether files are read and written at all."""
        return self.root is not None

    def _block_name(self, index: int) -> str:
        return f'k{self.k}/blocks{self.block_size}/block_{index:05d}.pt'

    def _load(self, relative: str) -> Optional[Dict[str, torch.Tensor]]:
        if not self.enabled or not (self.root / relative).is_file():
            return None
        return torch.load(self.root / relative, map_location='cpu', weights_only=True)

    def _save(self, relative: str, tensors: Dict[str, torch.Tensor]) -> None:
        if not self.enabled:
            return
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
        torch.save(tensors, temporary)
        os.replace(temporary, path)

    def load_features(self) -> Optional[Dict[str, torch.Tensor]]:
        """``image_feats, text_feats, sims, input_ids, attention_mask`` if cached."""
        return self._load('features.pt')

    def save_features(self, features: Dict[str, torch.Tensor]) -> None:
        """Store the features (call on one rank only)."""
        self._save('features.pt', features)

    def load_block(self, index: int) -> Optional[Dict[str, torch.Tensor]]:
        """The cached ``image_index, text_index, itm_logit`` of block ``index``."""
        return self._load(self._block_name(index))

    def save_block(self, index: int, pairs: Dict[str, torch.Tensor]) -> None:
        """Store one re-ranked block (each block has one owner rank)."""
        self._save(self._block_name(index), pairs)

    def load_scores(self) -> Optional[RetrievalScores]:
        """The finished score matrices, if any."""
        saved = self._load(f'k{self.k}/scores.pt')
        return None if saved is None else RetrievalScores(i2t=saved['i2t'], t2i=saved['t2i'])

    def save_scores(self, scores: RetrievalScores) -> None:
        """Store the finished matrices and drop the per-block files they make redundant."""
        if self.enabled:
            self._save(f'k{self.k}/scores.pt', dict(i2t=scores.i2t, t2i=scores.t2i))
            shutil.rmtree(self.root / f'k{self.k}' / f'blocks{self.block_size}',
                          ignore_errors=True)
