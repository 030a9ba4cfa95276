"""``torch.compile`` one transformer layer at a time, in place (training and inference).

A pre-training step of BLIP-base at batch 64 spends more time launching kernels on the host
than running them on an H200 (``benchmarks.profile_train_step``). Compiling each ViT block
and MED layer fuses its element-wise work (bias, GELU, residual, LayerNorm, autocast casts)
into few kernels, while the code between layers (tokenising, hard-negative sampling, the
momentum queues, ``torch.distributed``) stays eager. ``nn.Module.compile`` keeps the
parameters and ``state_dict`` keys as they are, so checkpoints do not change.
"""
from timm.models.vision_transformer import Block
from torch import nn

from .med import MedLayer

LAYER_TYPES = (Block, MedLayer)


def compile_transformer_layers(model: nn.Module, **options) -> int:
    """Compile every ViT block and MED layer of ``model`` in place (``options`` go to
    ``torch.compile``); returns how many layers were compiled."""
    layers = [module for module in model.modules() if isinstance(module, LAYER_TYPES)]
    for layer in layers:
        layer.compile(**options)
    return len(layers)
