"""CLIP image towers from open_clip as BLIP image encoders, named by open_clip's model names.

``dict(type='OpenClipTower', model_name='ViT-B-16', image_size=384)`` builds the image
tower of open_clip's ``ViT-B-16`` (``open_clip.create_model(name, pretrained=None)``:
nothing downloads) at 384 px and returns, for BLIP's cross-attention, every token
(``[CLS]`` first) at the tower's width, *after* ``ln_post``: BLIP's own ViT hands over its
final-normed tokens (timm's ``norm``), and for a [CLS]-pooled tower (open_clip's ViT-B-16,
ViT-L-14...) the ``[CLS]`` after ``ln_post`` is exactly what CLIP projects for its
contrastive loss, so BLIP's ITC head on ``tokens[:, 0]`` reads the feature CLIP trained.
:meth:`OpenClipTower.features` also gives the projected pooled feature, open_clip's own
image embedding.

Weights come from a local open_clip checkpoint (a bare state dict, open_clip's training
checkpoint ``{'state_dict': ...}``, or ``.safetensors``; read weights-only) through
:func:`load_open_clip_vision` (``init=dict(vision=dict(type='open_clip', path=...))``).
Position embeddings are interpolated (bicubic) when the checkpoint was trained at another
resolution; a checkpoint of another width, depth or patch size fails naming both.

:data:`TOYWORLD_MODEL` is a ToyWorld-sized tower (64 px, patch 8, width 96, 2 blocks, the
shape of ``BlipViT``'s ``vit_tiny_patch8``; it pools by averaging patch tokens, as a 2-block
tower learns faster that way, like the tiny BLIP's max pooling) registered through
open_clip's own model-config mechanism (``open_clip.add_model_config`` on
``open_clip_configs/``).
"""
import re
from pathlib import Path
from typing import Mapping, Tuple

import torch
from torch import nn

from harness.core.optional import require
from harness.core.registry import MODELS

from .checkpoint import CheckpointError, LoadReport, load_checkpoint, read_checkpoint
from .key_maps import DDP_PREFIX, OPEN_CLIP_VISUAL
from .vit import interpolate_pos_embed

TOYWORLD_MODEL = 'ToyWorld-ViT-T-8'
CONFIG_DIR = Path(__file__).with_name('open_clip_configs')
BLOCK_KEY = re.compile(r'^visual\.transformer\.resblocks\.(\d+)\.')


def open_clip_library():
    """The ``open_clip`` module, with this repository's model configs registered in it."""
    open_clip = require('open_clip', 'CLIP image towers (OpenClipTower)', 'open_clip_torch')
    if TOYWORLD_MODEL not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_DIR)
    return open_clip


@MODELS.register_module()
class OpenClipTower(nn.Module):
    """The image tower of an open_clip CLIP model, returning all tokens.

    Args:
        model_name: an open_clip model name (``open_clip.list_models()``: ``'ViT-B-16'``,
            ``'ViT-L-14'``... or :data:`TOYWORLD_MODEL`); the tower must be open_clip's
            ViT (not a ResNet or a timm tower).
        image_size: square input resolution; default the model config's.
        grad_checkpointing: recompute block activations in backward to save memory.

    Attributes: ``embed_dim`` (token width), ``output_dim`` (CLIP's embedding width),
    ``image_size``, and the pre-processing open_clip names for the model: ``mean``,
    ``std``, ``interpolation``. Parameters are open_clip's, under ``visual.``.
    """

    def __init__(self, model_name: str = 'ViT-B-16', image_size: int = None,
                 grad_checkpointing: bool = False):
        super().__init__()
        open_clip = open_clip_library()
        if model_name not in open_clip.list_models():
            raise ValueError(f'OpenClipTower: model_name={model_name!r} is not an open_clip model '
                             f'config; choose one of open_clip.list_models(), e.g. ViT-B-16, '
                             f'ViT-L-14 or {TOYWORLD_MODEL}')
        # The default device (meta under ``with torch.device('meta')``): nothing is allocated
        # when costs are counted.
        clip = open_clip.create_model(model_name, pretrained=None, force_image_size=image_size,
                                      device=torch.empty(0).device)
        visual = clip.visual
        if not isinstance(visual, open_clip.transformer.VisionTransformer):
            raise ValueError(f'OpenClipTower: {model_name!r} has a {type(visual).__name__} image '
                             f'tower; only open_clip ViT towers are supported')
        self.visual = visual
        self.model_name = model_name
        self.embed_dim = visual.transformer.width
        self.output_dim = visual.output_dim
        self.image_size = visual.image_size[0]
        self.mean = tuple(visual.preprocess_cfg['mean'])
        self.std = tuple(visual.preprocess_cfg['std'])
        self.interpolation = visual.preprocess_cfg['interpolation']
        visual.set_grad_checkpointing(grad_checkpointing)

    def features(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(tokens [B, 1 + N, width], pooled [B, output_dim])``: every token after
        ``ln_post`` ([CLS] first) and open_clip's projected image embedding."""
        out = self.visual.forward_intermediates(
            images, indices=1, normalize_intermediates=True, output_fmt='NLC',
            output_extra_tokens=True)
        tokens = torch.cat([out['image_intermediates_prefix'][-1],
                            out['image_intermediates'][-1]], dim=1)
        return tokens, out['image_features']

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Encode ``[B, 3, H, W]`` images into ``[B, 1 + N, width]`` tokens."""
        return self.features(images)[0]

    def set_input_size(self, img_size: Tuple[int, int]) -> None:
        """Switch to ``img_size`` (square) pixels, interpolating the position table bicubically."""
        size = img_size[0]
        patch = self.visual.patch_size[0]
        grid = size // patch
        table = self.visual.positional_embedding
        with torch.no_grad():
            resized = interpolate_pos_embed(table[None], grid * grid)[0]
        self.visual.positional_embedding = nn.Parameter(resized, requires_grad=table.requires_grad)
        self.visual.image_size = (size, size)
        self.visual.grid_size = (grid, grid)
        self.image_size = size


def tower_shape(state: Mapping[str, torch.Tensor]) -> dict:
    """``{'width', 'blocks', 'patch'}`` of the open_clip image tower a state dict holds."""
    names = {(k[len(DDP_PREFIX):] if k.startswith(DDP_PREFIX) else k): v for k, v in state.items()}
    conv = names[OPEN_CLIP_VISUAL + 'conv1.weight']
    blocks = {int(m.group(1)) for m in map(BLOCK_KEY.match, names) if m}
    return dict(width=conv.shape[0], blocks=len(blocks), patch=conv.shape[-1])


def check_tower_fits(model: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """Raise :class:`CheckpointError` naming the difference when ``state`` is not an open_clip
    ViT tower of the shape of ``model.visual_encoder``."""
    encoder = getattr(model, 'visual_encoder', None)
    if not isinstance(encoder, OpenClipTower):
        raise CheckpointError(
            f'{where} is an open_clip checkpoint, but the model\'s image encoder is '
            f'{type(encoder).__name__}; set model.vision=dict(type=\'OpenClipTower\', '
            f'model_name=<the checkpoint\'s model>) to load it')
    if not any(k.endswith(OPEN_CLIP_VISUAL + 'conv1.weight') for k in state):
        raise CheckpointError(
            f'{where} holds no open_clip ViT image tower (no visual.conv1.weight; first keys '
            f'{list(state)[:4]}); a timm/DeiT ViT loads with type=\'timm\', a BLIP checkpoint '
            f'with type=\'blip\'')
    theirs = tower_shape(state)
    ours = tower_shape({OPEN_CLIP_VISUAL + k: v for k, v in encoder.visual.state_dict().items()})
    differing = [f'{name} {theirs[name]} vs {ours[name]}' for name in ours
                 if theirs[name] != ours[name]]
    if differing:
        raise CheckpointError(
            f'{where} does not fit the model\'s OpenClipTower({encoder.model_name!r}): checkpoint '
            f'vs model {", ".join(differing)}; build model.vision with the open_clip '
            f'model_name the checkpoint was trained as')


def load_open_clip_vision(model: nn.Module, path: str) -> LoadReport:
    """An open_clip checkpoint's image tower into ``model.visual_encoder`` (and its momentum
    copy), strictly; the text tower and logit scale are dropped and reported."""
    state, where, _ = read_checkpoint(path)
    check_tower_fits(model, state, where)
    report = load_checkpoint(model, state, kind='open_clip', scope=('visual_encoder',),
                             strict=True)
    report.source = where
    return report
