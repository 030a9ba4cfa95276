"""The written interfaces between plugins: what a task may call on a model, and what a
model reads from its image backbone.

Task plugins talk to models through :class:`VisionLanguageModel` (retrieval, captioning)
or :class:`VisualQuestionAnswering` (VQA) only (never through ``text_encoder``,
``itm_head`` or other internals), so any registered model that satisfies one serves every
task of its kind. ``tests/test_model_api.py`` checks every registered model against the
interface it claims. A model may leave out the heads it was not built with (a caption-only
model has no ITM head); calling a missing head raises a clear error.

An image backbone (``model.vision`` in a config) satisfies :class:`ImageBackbone`.
"""
from typing import Any, Mapping, Optional, Protocol, Sequence, runtime_checkable

import torch

# OpenAI CLIP's pixel statistics, which BLIP normalises with too: the pre-processing of
# a backbone that names no other.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_PREPROCESSING: Mapping[str, Any] = dict(mean=CLIP_MEAN, std=CLIP_STD,
                                                interpolation='bicubic')
PREPROCESSING_KEYS = tuple(DEFAULT_PREPROCESSING)


def backbone_preprocessing(backbone: Any) -> dict:
    """``{'mean', 'std', 'interpolation'}`` an image backbone's inputs must be made with: its
    own attributes of those names where it has them, else :data:`DEFAULT_PREPROCESSING`."""
    return {key: getattr(backbone, key, default) for key, default in DEFAULT_PREPROCESSING.items()}


@runtime_checkable
class ImageBackbone(Protocol):
    """An image encoder BLIP can cross-attend to.

    ``forward(images [B, 3, S, S]) -> tokens [B, 1 + N, width]`` with the pooled ([CLS])
    token first; ``embed_dim`` is ``width``. Nothing else is required: the device comes
    from the parameters and ``S`` from the config's ``vision.image_size`` (a backbone that
    can change resolution, like ``BlipViT``, keeps an ``image_size`` attribute the
    checkpoint loader updates).

    Optional attributes ``mean``, ``std`` (per RGB channel, for pixels in [0, 1]) and
    ``interpolation`` (a torchvision ``InterpolationMode`` value, e.g. ``'bicubic'``) say how
    its images are pre-processed; without them CLIP's statistics and bicubic resizing are
    used (:func:`backbone_preprocessing`). Datasets that take ``preprocessing`` get them
    from the model through the training and evaluation stages.
    """

    embed_dim: int

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """All tokens of the images."""


@runtime_checkable
class VisionLanguageModel(Protocol):
    """What task plugins may call on a model (BLIP's ``Blip`` is the reference).

    Attributes:
        embed_dim: width of the ITC features.
        image_size: input resolution the model was built for (square).
        max_text_length: the model's token limit for texts.
        tokenizer: ``tokenizer(texts, max_length, padding='max_length') -> {'input_ids',
            'attention_mask'}`` (CPU tensors), plus ``decode``/``batch_decode``.
    """

    embed_dim: int
    image_size: int
    max_text_length: int
    tokenizer: Any

    def tokenize(self, texts: Sequence[str], max_length: Optional[int] = None) -> dict:
        """``input_ids``/``attention_mask`` of ``texts`` on the model's device (padded to
        the longest, cut at ``max_length`` or the model's own limit)."""

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 1 + N, width]`` image tokens (the input of every image-grounded head)."""

    def image_projection(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """Projected, not yet normalised ITC vectors ``[B, embed_dim]`` (videos average them)."""

    def image_features(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """L2-normalised ITC image features ``[B, embed_dim]``."""

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                      ) -> torch.Tensor:
        """L2-normalised ITC text features ``[B, embed_dim]``."""

    def image_key_values(self, image_embeds: torch.Tensor) -> list:
        """Per-layer cross-attention keys/values of images, reusable across many texts."""

    def itm_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   image_embeds: Optional[torch.Tensor] = None, image_kv: Optional[list] = None,
                   image_atts: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``[B, 2]`` image-text matching logits (index 1 = match), raw."""

    def generate_captions(self, images: torch.Tensor, **decoding: Any) -> list:
        """Captions of ``images`` (prompt stripped) with the given decoding options."""

    def num_parameters(self) -> int:
        """Unique parameters of the model proper (momentum copies excluded)."""


MODEL_API_METHODS: Sequence[str] = (
    'tokenize', 'encode_image', 'image_projection', 'image_features', 'text_features',
    'image_key_values', 'itm_logits', 'generate_captions', 'num_parameters')
MODEL_API_ATTRIBUTES: Sequence[str] = ('embed_dim', 'image_size', 'max_text_length', 'tokenizer')


@runtime_checkable
class CrossAttentionExplainable(Protocol):
    """What the ``explain`` and ``grounding`` tasks call on a model besides
    :class:`VisionLanguageModel`: its cross-attention probabilities, captured on request.

    ``head`` is ``'itm'`` (the image-grounded encoder) or ``'caption'`` (the decoder).
    """

    def cross_attention_depth(self, head: str) -> int:
        """Number of cross-attention layers of ``head``."""

    def capture_cross_attention(self, head: str, layers: Sequence[int]) -> Any:
        """A context manager yielding ``{layer: [probs [B, heads, queries, image tokens]
        per forward pass]}`` while it is open; scores and captions are unchanged, and
        under autograd the kept probabilities receive ``.grad`` (for Grad-CAM)."""

    def caption_logits(self, image_embeds: torch.Tensor, texts: Sequence[str]) -> dict:
        """Teacher-forced decoder pass over the caption prompt + ``texts``: ``{'input_ids',
        'attention_mask', 'logits', 'prompt_length'}``."""


EXPLAIN_API_METHODS: Sequence[str] = ('cross_attention_depth', 'capture_cross_attention',
                                      'caption_logits')


@runtime_checkable
class VisualQuestionAnswering(Protocol):
    """What VQA task plugins may call on a model (BLIP's ``BlipVQA`` is the reference).

    Attributes:
        image_size: input resolution the model was built for (square).
        max_text_length: the model's token limit for questions.
        tokenizer: as :class:`VisionLanguageModel`'s.
    """

    image_size: int
    max_text_length: int
    tokenizer: Any

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 1 + N, width]`` image tokens."""

    def encode_questions(self, image_embeds: torch.Tensor, questions: Sequence[str],
                         image_atts: Optional[torch.Tensor] = None) -> tuple:
        """``(states [B, L, H], mask [B, L])`` of questions grounded on ``image_embeds``
        (``[B, M, width]``: one image's tokens, or several frames' concatenated)."""

    def answer_candidates(self, answer_list: Sequence[str]) -> dict:
        """A candidate answer list tokenized once for :meth:`rank_answers`."""

    def rank_answers(self, states: torch.Tensor, atts: torch.Tensor, candidates: dict,
                     k: int = 128, score: str = 'blip') -> torch.Tensor:
        """``[B]`` indices of each question's best candidate answer."""

    def generate_answers(self, states: torch.Tensor, atts: torch.Tensor,
                         **decoding: Any) -> list:
        """Free-form answers decoded from the question states."""

    def num_parameters(self) -> int:
        """Unique parameters of the model proper."""


VQA_API_METHODS: Sequence[str] = (
    'encode_image', 'encode_questions', 'answer_candidates', 'rank_answers', 'generate_answers',
    'num_parameters')
VQA_API_ATTRIBUTES: Sequence[str] = ('image_size', 'max_text_length', 'tokenizer')
