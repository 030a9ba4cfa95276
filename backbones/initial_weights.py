"""Initial weights for pre-training: the image encoder and the text transformer from local files.

BLIP never pre-trains from random weights: its ViT starts from ImageNet weights (DeiT-B/16
for base, timm's ImageNet-21k ViT-L/16 for large; ``models/blip_pretrain.py``) and its text
encoder and decoder both start from bert-base-uncased (BERT's token types, pooler and
next-sentence head are dropped; the cross-attention layers, absent from BERT, start anew).
A training stage describes this with

    init = dict(vision=dict(type='timm', path='/models/deit_base_patch16_224-b5f2ef4d.pth'),
                text=dict(type='bert', path='/models/bert-base-uncased'))

where ``type='random'`` keeps the constructor's weights on purpose. Each part's ``type`` is
a key of :data:`VISION_INITS` / :data:`TEXT_INITS` (``'open_clip'``: a CLIP image tower for
an ``OpenClipTower`` image encoder; add an entry for a new source).
:func:`initialise_weights` loads both parts strictly (a file that does not fit fails), logs
the reports and returns a JSON-ready record of where the weights came from: path, the
sha256 of every file read and the report's counts.
"""
import hashlib
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional

from torch import nn

from harness.core.registry import FUNCTIONS

from .checkpoint import LoadReport, load_checkpoint, load_timm_vision_checkpoint, weight_files
from .open_clip_tower import load_open_clip_vision

Loader = Callable[[nn.Module, str], LoadReport]
TEXT_SCOPE = ('text_encoder', 'text_decoder')


def load_blip_vision(model: nn.Module, path: str) -> LoadReport:
    """The image encoder of an official or Hugging Face BLIP checkpoint (nothing else)."""
    return load_checkpoint(model, path, scope=('visual_encoder',), strict=True)


def load_bert_text(model: nn.Module, path: str) -> LoadReport:
    """A BERT checkpoint into the text encoder and the text decoder, as BLIP does."""
    return load_checkpoint(model, path, kind='bert', scope=TEXT_SCOPE, strict=True)


def load_timm_vision(model: nn.Module, path: str) -> LoadReport:
    """A timm / DeiT ImageNet ViT into the image encoder (classifier dropped)."""
    return load_timm_vision_checkpoint(model, path, strict=True)


# type -> loader; None: keep the constructor's random weights (an explicit choice).
VISION_INITS: Dict[str, Optional[Loader]] = {
    'timm': load_timm_vision, 'blip': load_blip_vision, 'open_clip': load_open_clip_vision,
    'random': None}
TEXT_INITS: Dict[str, Optional[Loader]] = {'bert': load_bert_text, 'random': None}
PARTS = {'vision': VISION_INITS, 'text': TEXT_INITS}
EXAMPLE = ("init=dict(vision=dict(type='timm', path='/models/deit_base_patch16_224-b5f2ef4d.pth'), "
           "text=dict(type='bert', path='/models/bert-base-uncased'))")


@FUNCTIONS.register_module(name='check_initialisation')
def check_init(init: Optional[Mapping], required: bool = False, where: str = 'init') -> None:
    """Raise ``ValueError`` naming the keys and the fix if ``init`` is malformed, or if
    ``required`` and a part is not set (``type='random'`` counts as set: an explicit choice).

    Registered as ``FUNCTIONS['check_initialisation']``: the training stage checks its
    config when it is built, before any training starts.
    """
    init = init or {}
    unknown = set(init) - set(PARTS)
    if unknown:
        raise ValueError(f'{where}: unknown init part(s) {sorted(unknown)}; the parts are '
                         f'{sorted(PARTS)}, e.g. {EXAMPLE}')
    unset = [f'init.{part}' for part in PARTS if not init.get(part)]
    if required and unset:
        raise ValueError(f'{where}: init_required=True but {", ".join(unset)} is not set; BLIP '
                         f'pre-training starts from ImageNet ViT and BERT weights, never from '
                         f'random ones. Set {EXAMPLE}, or type=\'random\' for a part to '
                         f'start it from random weights on purpose')
    for part, spec in init.items():
        types = PARTS[part]
        kind = (spec or {}).get('type')
        if kind not in types:
            raise ValueError(f'{where}: init.{part}.type is {kind!r}; choose one of '
                             f'{sorted(types)}, e.g. {EXAMPLE}')
        if types[kind] is not None and not spec.get('path'):
            raise ValueError(f'{where}: init.{part} (type {kind!r}) needs a path to the '
                             f'weights, e.g. {EXAMPLE}')


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def provenance(path: str) -> dict:
    """``{'path': ..., 'sha256': {file name: hash}}`` of the files a checkpoint path reads."""
    return dict(path=str(path), sha256={file.name: file_sha256(file)
                                        for file in weight_files(path)})


@FUNCTIONS.register_module(name='initialise_weights')
def initialise_weights(model: nn.Module, init: Mapping, logger=None, where: str = 'init') -> dict:
    """Load each part of ``init`` into ``model``; log the reports; return the record.

    Registered as ``FUNCTIONS['initialise_weights']`` for the training stage. The record
    (per part: ``type`` and, for loaded parts, ``path``, ``sha256`` and the report's
    ``counts``) goes into the stage's outputs, so results can say where training started.
    """
    check_init(init, where=where)
    record = {}
    for part, spec in init.items():
        loader = PARTS[part][spec['type']]
        record[part] = dict(type=spec['type'])
        if loader is None:
            continue
        report = loader(model, spec['path'])
        (logger.info if logger else print)(f'{where}: {part} initialised from {spec["path"]}:'
                                           f'\n{report}')
        record[part].update(provenance(spec['path']), counts=report.counts())
    return record
