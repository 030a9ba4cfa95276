"""What every BLIP model shares: an image encoder, a tokenizer and mmengine's three modes.

:class:`~backbones.blip.Blip` (pre-training, retrieval, captioning) and
:class:`~backbones.blip_vqa.BlipVQA` both derive from :class:`BlipBase`, so image size,
tokenization, the ``[ENC]``/``[DEC]`` first-token swap, parameter counting and the
``forward`` dispatch are written once.
"""
from typing import Optional, Sequence

import torch
from mmengine.model import BaseModel

from harness.core.model_api import backbone_preprocessing
from harness.core.registry import MODELS

from .compiled_layers import compile_transformer_layers


class BlipBase(BaseModel):
    """mmengine model with BLIP's data preprocessor and the helpers its heads share.

    Subclasses set ``tokenizer``, ``visual_encoder``, ``configured_image_size`` and
    ``max_text_length``, and define ``loss`` and ``predict``.
    """

    def __init__(self, data_preprocessor: Optional[dict] = None):
        super().__init__(data_preprocessor=MODELS.build(
            data_preprocessor or dict(type='BlipDataPreprocessor')))

    def init_weights(self):
        """Keep the weights made at construction.

        mmengine calls ``init_weights`` at train start; timm's ViT would then re-draw its
        weights (and its momentum copy differently), breaking the online/momentum equality
        and any weights loaded before training. Initialisation happens in ``__init__``.
        """

    def num_parameters(self) -> int:
        """Unique parameters of the model proper (momentum copies excluded), as the paper counts."""
        momentum = {id(p) for name, module in self.named_children() if name.endswith('_m')
                    for p in module.parameters()}
        seen = {id(p): p for p in self.parameters() if id(p) not in momentum}
        return sum(p.numel() for p in seen.values())

    def compile_layers(self, **options) -> int:
        """``torch.compile`` each ViT block and MED layer in place (``CompileLayersHook``;
        :mod:`backbones.compiled_layers`); returns how many."""
        return compile_transformer_layers(self, **options)

    @property
    def image_size(self) -> int:
        """The square input resolution: the encoder's own (after a checkpoint loader resized
        it) where it keeps one, else the configured ``vision.image_size``."""
        return getattr(self.visual_encoder, 'image_size', self.configured_image_size)

    @property
    def preprocessing(self) -> dict:
        """How input images are made: the image encoder's ``mean``, ``std`` and
        ``interpolation`` (CLIP's statistics, bicubic, where it names none)."""
        return backbone_preprocessing(self.visual_encoder)

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are."""
        return next(self.parameters()).device

    def tokenize(self, texts: Sequence[str], max_length: Optional[int] = None,
                 padding: str = 'longest', pad_to_multiple_of: Optional[int] = None) -> dict:
        """Token ids and mask of ``texts`` on the model's device (``padding`` and
        ``pad_to_multiple_of`` as the tokenizer)."""
        return self.tokenizer(texts, max_length or self.max_text_length, padding=padding,
                              device=self.device, pad_to_multiple_of=pad_to_multiple_of)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 1 + N, width]`` image tokens; images are cast to the encoder's weights' dtype
        (a model cast to bf16 takes the float32 batches of the readers)."""
        return self.visual_encoder(images.to(next(self.visual_encoder.parameters()).dtype))

    def with_first_token(self, input_ids: torch.Tensor, token_id: int) -> torch.Tensor:
        """A copy of ``input_ids`` whose first token is ``token_id`` ([ENC] or [DEC])."""
        replaced = input_ids.clone()
        replaced[:, 0] = token_id
        return replaced

    # ------------------------------------------------------------------ mmengine modes
    def forward(self, inputs: torch.Tensor, data_samples: Optional[dict] = None,
                mode: str = 'tensor'):
        """mmengine entry point: ``mode`` is ``'loss'``, ``'predict'`` or ``'tensor'``."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.encode_image(inputs)
        raise ValueError(f'unknown mode {mode!r}; use loss, predict or tensor')

