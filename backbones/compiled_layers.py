"""``torch.compile`` one transformer layer at a time, in place (training and inference).

A pre-training step of BLIP-base at batch 64 spends more time launching kernels on the host
than running them on an H200 (``benchmarks.profile_train_step``). Compiling each ViT block
and MED layer fuses its element-wise work (bias, GELU, residual, LayerNorm, autocast casts)
into few kernels, while the code between layers (tokenising, hard-negative sampling, the
momentum queues, ``torch.distributed``) stays eager. ``nn.Module.compile`` keeps the
parameters and ``state_dict`` keys as they are, so checkpoints do not change.
"""
import contextlib
from typing import Iterator, List, Union

from timm.models.vision_transformer import Block
from torch import nn

from .med import MedLayer

LAYER_TYPES = (Block, MedLayer)


def transformer_layers(model: nn.Module) -> List[nn.Module]:
    """Every ViT block and MED layer of ``model``."""
    return [module for module in model.modules() if isinstance(module, LAYER_TYPES)]


def compile_transformer_layers(model: nn.Module, **options) -> int:
    """Compile every ViT block and MED layer of ``model`` in place (``options`` go to
    ``torch.compile``); returns how many layers were compiled."""
    layers = transformer_layers(model)
    for layer in layers:
        layer.compile(**options)
    return len(layers)


@contextlib.contextmanager
def layers_compiled(model: nn.Module, options: Union[bool, dict] = True
                    ) -> Iterator[nn.Module]:
    """``model`` with every ViT block and MED layer compiled for the duration of the block
    (an evaluation's), then as it was: each layer gets back the call it had (eager, or
    compiled by ``CompileLayersHook``). torch keeps the compiled code, so a later block with
    the same shapes does not compile again.

    ``options``: True for ``torch.compile``'s defaults, a dict of its options, False to
    compile nothing.
    """
    if not options:
        yield model
        return
    layers = transformer_layers(model)
    # nn.Module.compile stores the compiled call here; the attribute is its only state.
    previous = [layer._compiled_call_impl for layer in layers]
    compile_transformer_layers(model, **({} if options is True else options))
    try:
        yield model
    finally:
        for layer, call in zip(layers, previous):
            layer._compiled_call_impl = call
