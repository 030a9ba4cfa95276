"""The BLIP model: ViT image encoder + MED text transformer + ITC/ITM/LM heads.

One class serves pre-training (ITC+ITM+LM, BLIP's models/blip_pretrain.py), retrieval
fine-tuning (ITC+ITM with image-id positives, models/blip_retrieval.py) and caption
fine-tuning (LM with a masked prompt); the ``losses`` argument chooses which heads exist and
train. Module names are official BLIP's
(``visual_encoder``, ``text_encoder``, ``text_decoder.{bert,cls}``, ``vision_proj``,
``text_proj``, ``itm_head``, ``temp``, momentum copies ``*_m``, queues), so official
checkpoints load key for key.
"""
import contextlib
import copy
from typing import Dict, Iterator, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from harness.core.registry import MODELS, TOKENIZERS

from . import generation
from .blip_base import BlipBase
from .blip_losses import (FeatureQueue, draw_negatives, gather_across_ranks, gather_with_grad,
                          hard_negative_weights, positive_targets, sample_hard_negatives,
                          soft_target_contrastive_loss)
from .med import (MedConfig, MedDecoder, MedTextModel, capture_cross_attention, lm_loss,
                  share_encoder_decoder)

LOSSES = ('itc', 'itm', 'lm')
# Which text transformer each explainable head cross-attends with.
EXPLAINABLE_HEADS = {'itm': 'itm', 'caption': 'lm'}
IMAGE_POOLS = ('cls', 'max')


def gather_rows(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``tensor[index]`` along dim 0 as a one-hot matrix product.

    Plain indexing back-propagates by scattered accumulation, whose order over CPU threads
    varies from run to run when an index repeats (two texts drawing the same hard negative
    image), so fixed seeds gave different weights; a product's gradient is reproducible.
    """
    one_hot = F.one_hot(index, tensor.shape[0]).to(tensor.dtype)
    return (one_hot @ tensor.flatten(1)).view(len(index), *tensor.shape[1:])


def pool_image_tokens(image_embeds: torch.Tensor, how: str) -> torch.Tensor:
    """The image's ITC vector: its [CLS] token (BLIP) or the max over its patch tokens."""
    if how == 'cls':
        return image_embeds[:, 0]
    return image_embeds[:, 1:].max(dim=1).values

MED_SHAPES = {
    'base': dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072),
    'tiny': dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=512, max_position_embeddings=64),
}


def build_med_config(arch: str, vocab_size: int, encoder_width: int, **overrides) -> MedConfig:
    """A :class:`MedConfig` of a named shape (``'base'``, ``'tiny'``) with overrides."""
    if arch not in MED_SHAPES:
        raise ValueError(f'unknown MED arch {arch!r}; choose one of {sorted(MED_SHAPES)}')
    fields = dict(MED_SHAPES[arch], vocab_size=vocab_size, encoder_width=encoder_width)
    fields.update(overrides)
    return MedConfig(**fields)


@MODELS.register_module()
class Blip(BlipBase):
    """BLIP with the three MED heads and a parameter-sharing policy.

    Args:
        vision: config of the image encoder (e.g. ``dict(type='BlipViT', ...)``).
        tokenizer: config of the tokenizer (``dict(type='BlipTokenizer', vocab=...)``).
        text_arch: MED shape name (``'base'``, ``'tiny'``); ``text_overrides`` change fields.
        losses: the trained heads, a subset of ``('itc', 'itm', 'lm')``.
        sharing: encoder/decoder sharing policy (``all``, ``all_but_ca``, ``all_but_sa``,
            ``none``); BLIP's choice is ``all_but_sa``.
        embed_dim: ITC projection width (256).
        queue_size: momentum feature queue length (57600 in BLIP pre-training).
        momentum: momentum-encoder EMA factor (0.995).
        alpha: soft-target weight of ITC distillation (0.4); ramped by ``AlphaWarmupHook``.
        max_text_length: token limit (30 pre-train, 35 retrieval, 40 captioning).
        prompt: caption prompt whose tokens are masked out of the LM loss.
        image_id_positives: retrieval fine-tuning (BLIP's blip_retrieval.py): all captions
            of one image are ITC positives, and ITM's hard negatives are drawn from fresh
            online image x online text similarities (over ``temp``, no ``+1e-4``) with every
            pair of the same image id masked out. Otherwise pre-training: only the pair
            itself is positive and negatives come from ITC's similarities (online against
            momentum features) ``+1e-4``. Needs the ``'itc'`` head (its ``temp``).
        negative_all_rank: draw retrieval fine-tuning's ITM negatives from the batches of
            all ranks (BLIP: True for COCO, False for Flickr30K); texts are then padded to
            ``max_text_length`` so that ranks' token tensors gather. A no-op without
            ``torch.distributed``.
        image_pool: the ITC image vector: ``'cls'`` (BLIP) or ``'max'`` over patch tokens.
            A 2-block ViT trained from scratch cannot learn to gather objects into [CLS]
            in a few hundred steps (ToyWorld ITC stays at chance), while max pooling learns
            at once; the tiny ToyWorld models therefore use ``'max'``.
        label_smoothing: LM label smoothing (0.1).
        negative_sharpness: factor on the similarities from which ITM hard negatives are
            drawn: 1 is BLIP's rule, 0 draws them uniformly. Tiny from-scratch models need
            easier negatives: with BLIP's, ITM stays at its prior (loss 0.636) on ToyWorld.
        reuse_image_kv: ITM's three row groups (pairs, negative images, negative texts) read
            each image's cross-attention keys/values projected once per layer instead of once
            per row, and so does the LM decoder where it shares the encoder's cross-attention
            (``all``, ``all_but_sa``). The same values; their gradients sum in another order,
            so it is off by default (CPU scores keep their bits). At BLIP-base and batch 64
            it spares about 3.2 TFLOP of a pre-training step's projections.
        data_preprocessor: mmengine data preprocessor config.
    """

    def __init__(self,
                 vision: dict,
                 tokenizer: dict,
                 text_arch: str = 'base',
                 text_overrides: Optional[dict] = None,
                 losses: Sequence[str] = LOSSES,
                 sharing: str = 'all_but_sa',
                 embed_dim: int = 256,
                 queue_size: int = 57600,
                 momentum: float = 0.995,
                 alpha: float = 0.4,
                 max_text_length: int = 30,
                 prompt: str = '',
                 image_id_positives: bool = False,
                 image_pool: str = 'cls',
                 label_smoothing: float = 0.1,
                 negative_sharpness: float = 1.0,
                 negative_all_rank: bool = False,
                 reuse_image_kv: bool = False,
                 data_preprocessor: Optional[dict] = None):
        super().__init__(data_preprocessor)
        if image_pool not in IMAGE_POOLS:
            raise ValueError(f'image_pool must be one of {IMAGE_POOLS}, got {image_pool!r}')
        self.image_pool = image_pool
        if image_id_positives and 'itc' not in losses:
            raise ValueError("image_id_positives=True (retrieval fine-tuning) needs the 'itc' "
                             f"head for its temperature; got losses={tuple(losses)}")
        if negative_all_rank and not image_id_positives:
            raise ValueError('negative_all_rank=True applies to retrieval fine-tuning only; '
                             'set image_id_positives=True as well (or drop negative_all_rank)')
        if reuse_image_kv and negative_all_rank:
            raise ValueError('reuse_image_kv=True does not gather keys/values across ranks; '
                             'use it with negative_all_rank=False')
        self.reuse_image_kv = reuse_image_kv
        unknown = set(losses) - set(LOSSES)
        if unknown or not losses:
            raise ValueError(f'losses must be a non-empty subset of {LOSSES}, got {losses}')
        self.losses = tuple(losses)
        self.tokenizer = TOKENIZERS.build(tokenizer)
        self.visual_encoder = MODELS.build(vision)
        vision_width = self.visual_encoder.embed_dim
        self.embed_dim = embed_dim
        self.configured_image_size = vision.get('image_size')
        self.med_config = build_med_config(text_arch, len(self.tokenizer), vision_width,
                                           **(text_overrides or {}))
        self.sharing = sharing
        self.max_text_length = max_text_length
        self.prompt = prompt
        # Tokens of ``[DEC] + prompt`` (BLIP: ``len(tokenizer(prompt).input_ids) - 1``).
        self.prompt_length = len(self.tokenizer([prompt], 512)['input_ids'][0]) - 1
        self.image_id_positives = image_id_positives
        self.label_smoothing = label_smoothing
        self.alpha = alpha
        self.alpha_scale = 1.0  # set by AlphaWarmupHook during the first epoch(s)
        self.negative_sharpness = negative_sharpness
        self.negative_all_rank = negative_all_rank
        self.momentum = momentum
        # A list while a step is captured as a CUDA graph: draw_negatives appends its checks
        # there instead of reading the device (see backbones.graphed_step).
        self.deferred_checks: Optional[List[torch.Tensor]] = None

        if self.uses_encoder:
            self.text_encoder = MedTextModel(self.med_config)
        if 'lm' in self.losses:
            self.text_decoder = MedDecoder(self.med_config)
            if self.uses_encoder:
                share_encoder_decoder(self.text_encoder, self.text_decoder.bert, sharing)
                self.text_decoder.tie_output_embeddings()
        if 'itc' in self.losses:
            self.vision_proj = nn.Linear(vision_width, embed_dim)
            self.text_proj = nn.Linear(self.med_config.hidden_size, embed_dim)
            self.temp = nn.Parameter(torch.tensor(0.07))
            self.visual_encoder_m = self._momentum_copy(self.visual_encoder)
            self.text_encoder_m = self._momentum_copy(self.text_encoder)
            self.vision_proj_m = self._momentum_copy(self.vision_proj)
            self.text_proj_m = self._momentum_copy(self.text_proj)
            self.queue = FeatureQueue(embed_dim, queue_size)
        if 'itm' in self.losses:
            self.itm_head = nn.Linear(self.med_config.hidden_size, 2)

    # ------------------------------------------------------------------ structure
    @property
    def uses_encoder(self) -> bool:
        """Whether the model has a text encoder (ITC or ITM heads)."""
        return 'itc' in self.losses or 'itm' in self.losses

    @staticmethod
    def _momentum_copy(module: nn.Module) -> nn.Module:
        copied = copy.deepcopy(module)
        for param in copied.parameters():
            param.requires_grad_(False)
        return copied

    def momentum_pairs(self):
        """``(online, momentum)`` module pairs updated by EMA."""
        return [(self.visual_encoder, self.visual_encoder_m),
                (self.text_encoder, self.text_encoder_m),
                (self.vision_proj, self.vision_proj_m),
                (self.text_proj, self.text_proj_m)]

    @torch.no_grad()
    def momentum_update(self):
        """``param_m = m * param_m + (1 - m) * param`` for every momentum pair.

        Two multi-tensor ops over all pairs (a few kernels on CUDA, where a loop launched two
        per parameter); on the CPU they run each parameter's ``mul_``/``add_`` as the loop did.
        """
        online, averaged = [], []
        for module, module_m in self.momentum_pairs():
            online += [param.detach() for param in module.parameters()]
            averaged += list(module_m.parameters())
        torch._foreach_mul_(averaged, self.momentum)
        torch._foreach_add_(averaged, online, alpha=1 - self.momentum)

    # ------------------------------------------------------------------ encoders
    def image_features(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """L2-normalised ITC image features (from [CLS] unless ``image_pool`` says otherwise)."""
        return F.normalize(self.image_projection(image_embeds), dim=-1)

    def image_projection(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """The projected (not yet normalised) ITC vector of each image (video frames average it)."""
        return self.vision_proj(pool_image_tokens(image_embeds, self.image_pool))

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """L2-normalised ITC text features (unimodal encoder [CLS]; see :meth:`itm_logits`
        for the last layer's shortcut without gradients)."""
        hidden = self.text_encoder(input_ids, attention_mask, mode='text',
                                   first_token_only=not torch.is_grad_enabled())
        return F.normalize(self.text_proj(hidden[:, 0]), dim=-1)

    def image_key_values(self, image_embeds: torch.Tensor) -> list:
        """Per-layer cross-attention keys/values of ``image_embeds`` for :meth:`itm_logits`
        (``image_kv``): computed once per image, reused for all its candidate texts."""
        return self.text_encoder.image_key_values(image_embeds)

    def itm_logits(self, input_ids, attention_mask, image_embeds=None, image_kv=None,
                   image_atts=None) -> torch.Tensor:
        """``[B, 2]`` ITM logits (index 1 = match) of texts grounded on images.

        ``input_ids`` may start with [CLS]; the first token is replaced by [ENC].
        Pass ``image_kv`` (from :meth:`image_key_values`) to reuse an image's
        cross-attention keys/values across many texts. Without gradients (evaluation,
        re-ranking, filtering) the last layer's FFN runs on [ENC] alone
        (``first_token_only``); training keeps the full pass, so its gradients keep their
        bits.
        """
        hidden = self.text_encoder(self.with_first_token(input_ids, self.tokenizer.enc_token_id),
                                   attention_mask, mode='multimodal', image_embeds=image_embeds,
                                   image_kv=image_kv, image_atts=image_atts,
                                   first_token_only=not torch.is_grad_enabled())
        return self.itm_head(hidden[:, 0])

    def loss(self, images: torch.Tensor, data_samples: dict) -> Dict[str, torch.Tensor]:
        """ITC/ITM/LM losses (each logged separately) for a batch of image-text pairs."""
        return self.loss_on_inputs(images, self.text_inputs(data_samples, images.shape[0],
                                                            images.device))

    def text_inputs(self, data_samples: dict, batch: int, device,
                    padding: Optional[str] = None, pad_to_multiple_of: Optional[int] = None
                    ) -> Dict[str, torch.Tensor]:
        """The tensors the losses read of a batch's texts, on ``device``: the encoder's
        ``input_ids``/``attention_mask`` and ``image_ids`` (ITC/ITM), the decoder's
        ``caption_*`` tokens and labels (LM).

        ``padding`` overrides the texts' padding and ``pad_to_multiple_of`` rounds lengths up:
        a captured step needs few distinct shapes (``'max_length'``: one, as BLIP pads its
        pre-training texts; ``pad_to_multiple_of=8``: a few, with less padding). By default
        the encoder pads to the longest text, or to ``max_text_length`` when ranks gather
        tokens, and the decoder to the longest.
        """
        texts = data_samples['text']
        inputs = {}
        if self.uses_encoder:
            encoder_padding = padding or ('max_length' if self.negative_all_rank else 'longest')
            inputs.update(self.tokenize(texts, padding=encoder_padding,
                                        pad_to_multiple_of=pad_to_multiple_of))
            inputs['image_ids'] = self._image_ids(data_samples, batch, device)
        if 'lm' in self.losses:
            caption = self.caption_tokens(texts, padding=padding or 'longest',
                                          pad_to_multiple_of=pad_to_multiple_of)
            inputs.update({f'caption_{name}': value for name, value in caption.items()})
        return inputs

    def loss_on_inputs(self, images: torch.Tensor, inputs: Dict[str, torch.Tensor]
                       ) -> Dict[str, torch.Tensor]:
        """:meth:`loss` on texts already turned into tensors by :meth:`text_inputs`: only
        device work, no host reads (``deferred_checks``), so it can be captured."""
        image_embeds = self.encode_image(images)
        image_kv = (self.image_key_values(image_embeds)
                    if self.reuse_image_kv and 'itm' in self.losses else None)
        losses = {}
        if self.uses_encoder:
            tokens = dict(input_ids=inputs['input_ids'], attention_mask=inputs['attention_mask'])
            image_ids = inputs['image_ids']
            image_feat = self.image_features(image_embeds)
            text_feat = self.text_features(tokens['input_ids'], tokens['attention_mask'])
            if 'itc' in self.losses:
                sim_i2t, sim_t2i, losses['loss_itc'] = self._itc_loss(
                    images, tokens, image_ids, image_feat, text_feat)
            else:
                sim_i2t = image_feat @ text_feat.T
                sim_t2i = sim_i2t.T
            if 'itm' in self.losses:
                negatives = (self._retrieval_negatives(tokens, image_ids, image_feat, text_feat)
                             if self.image_id_positives else
                             self._pretrain_negatives(tokens, image_ids, sim_i2t, sim_t2i))
                losses['loss_itm'] = self._itm_loss(image_embeds, tokens, *negatives, image_kv)
        if 'lm' in self.losses:
            shares_kv = image_kv is not None and self.decoder_shares_cross_attention()
            losses['loss_lm'] = self.caption_loss(image_embeds, {
                name: inputs[f'caption_{name}']
                for name in ('input_ids', 'attention_mask', 'labels')},
                image_kv=image_kv if shares_kv else None)
        return losses

    def decoder_shares_cross_attention(self) -> bool:
        """Whether the LM decoder's cross-attention modules are the encoder's (sharing
        ``all`` or ``all_but_sa``), so image keys/values serve both."""
        if not (self.uses_encoder and 'lm' in self.losses):
            return False
        return all(encoder.crossattention is decoder.crossattention for encoder, decoder in
                   zip(self.text_encoder.encoder.layer, self.text_decoder.bert.encoder.layer))

    def _image_ids(self, data_samples, batch: int, device) -> torch.Tensor:
        if self.image_id_positives:
            return torch.as_tensor(data_samples['image_id'], device=device).view(-1)
        return torch.arange(batch, device=device)  # pre-training: only the pair itself

    def _itc_loss(self, images, tokens, image_ids, image_feat, text_feat):
        """Soft-target ITC against the momentum queue; returns sims (for ITM) and loss."""
        with torch.no_grad():
            self.temp.clamp_(0.001, 0.5)
            self.momentum_update()
            image_feat_m, text_feat_m = self._momentum_features(images, tokens, image_feat,
                                                                text_feat)
            queue = self.queue
            image_feat_all = torch.cat([image_feat_m.T, queue.image_queue.clone()], dim=1)
            text_feat_all = torch.cat([text_feat_m.T, queue.text_queue.clone()], dim=1)
            ids_all = torch.cat([image_ids.view(1, -1), queue.idx_queue.clone()], dim=1)
            targets = positive_targets(image_ids, ids_all)
            sim_i2t_m = image_feat_m @ text_feat_all / self.temp
            sim_t2i_m = text_feat_m @ image_feat_all / self.temp
        sim_i2t = image_feat @ text_feat_all / self.temp
        sim_t2i = text_feat @ image_feat_all / self.temp
        alpha = self.alpha * self.alpha_scale
        loss = soft_target_contrastive_loss(sim_i2t, sim_t2i, sim_i2t_m, sim_t2i_m, targets, alpha)
        # Pre-training queues hold no ids, so queued texts are never positives.
        queued_ids = image_ids if self.image_id_positives else torch.full_like(image_ids, -100)
        queue.push(image_feat_m, text_feat_m, queued_ids)
        return sim_i2t, sim_t2i, loss

    def _momentum_features(self, images, tokens, image_feat, text_feat):
        """ITC features of the momentum encoders (just updated).

        With ``momentum == 0`` the update made them copies of the online encoders, which
        computed these very features this step: those are reused (bit for bit the same,
        tested) instead of a second forward pass.
        """
        if self.momentum == 0.0:
            return image_feat.detach(), text_feat.detach()
        image_embeds_m = self.visual_encoder_m(images)
        image_feat_m = F.normalize(
            self.vision_proj_m(pool_image_tokens(image_embeds_m, self.image_pool)), dim=-1)
        text_hidden_m = self.text_encoder_m(tokens['input_ids'], tokens['attention_mask'],
                                            mode='text')
        return image_feat_m, F.normalize(self.text_proj_m(text_hidden_m[:, 0]), dim=-1)

    def _pretrain_negatives(self, tokens, image_ids, sim_i2t, sim_t2i):
        """ITM negatives as BLIP pre-training draws them: from ITC's similarities ``+1e-4``.

        Returns the negative texts' ids and mask (one per image) and the index of each
        text's negative image.
        """
        negative_texts, negative_images = sample_hard_negatives(
            sim_i2t, sim_t2i, image_ids, self.negative_sharpness, self.deferred_checks)
        return (tokens['input_ids'][negative_texts], tokens['attention_mask'][negative_texts],
                negative_images)

    def _retrieval_negatives(self, tokens, image_ids, image_feat, text_feat):
        """ITM negatives as BLIP retrieval fine-tuning draws them (returns as
        :meth:`_pretrain_negatives`, indices into all ranks' images if
        ``negative_all_rank``): softmax of online image x online text similarities over
        ``temp``, zero for every pair sharing an image id, across ranks if
        ``negative_all_rank``."""
        across = gather_across_ranks if self.negative_all_rank else (lambda tensor: tensor)
        candidate_ids = across(image_ids)
        with torch.no_grad():
            sim_i2t = image_feat @ across(text_feat).T / self.temp
            sim_t2i = text_feat @ across(image_feat).T / self.temp
        negative_texts, negative_images = draw_negatives(*(
            hard_negative_weights(sims, image_ids, candidate_ids, self.negative_sharpness)
            for sims in (sim_i2t, sim_t2i)), deferred_checks=self.deferred_checks)
        return (across(tokens['input_ids'])[negative_texts],
                across(tokens['attention_mask'])[negative_texts], negative_images)

    def _itm_loss(self, image_embeds, tokens, negative_ids, negative_mask, negative_images,
                  image_kv=None):
        """ITM cross-entropy over B positives and 2B negatives (labels [1]*B + [0]*2B): each
        text with a negative image (``negative_images``: indices), each image with a
        negative text. With ``image_kv`` (:meth:`image_key_values`) the rows read the
        images' projected keys/values instead of projecting their tokens again."""
        input_ids, mask = tokens['input_ids'], tokens['attention_mask']
        all_ids = torch.cat([input_ids, input_ids, negative_ids], dim=0)
        all_masks = torch.cat([mask, mask, negative_mask], dim=0)
        if image_kv is None:
            candidates = gather_with_grad(image_embeds) if self.negative_all_rank \
                else image_embeds
            all_images = torch.cat([image_embeds, gather_rows(candidates, negative_images),
                                    image_embeds], dim=0)
            logits = self.itm_logits(all_ids, all_masks, image_embeds=all_images)
        else:
            rows_kv = [tuple(torch.cat([part, gather_rows(part, negative_images), part])
                             for part in layer_kv) for layer_kv in image_kv]
            logits = self.itm_logits(all_ids, all_masks, image_kv=rows_kv)
        batch = input_ids.shape[0]
        labels = torch.zeros(3 * batch, dtype=torch.long, device=logits.device)
        labels[:batch] = 1
        return F.cross_entropy(logits.float(), labels)

    def caption_tokens(self, texts: Sequence[str], padding: str = 'longest',
                       pad_to_multiple_of: Optional[int] = None) -> dict:
        """Decoder inputs (``[DEC]`` first, prompt prepended) and LM targets.

        Padding and the prompt's tokens are ``-100`` in ``labels`` (BLIP masks the prompt).
        """
        tokens = self.tokenize([self.prompt + text for text in texts], padding=padding,
                               pad_to_multiple_of=pad_to_multiple_of)
        input_ids = self.with_first_token(tokens['input_ids'], self.tokenizer.bos_token_id)
        labels = input_ids.masked_fill(tokens['attention_mask'] == 0, -100)
        labels[:, :self.prompt_length] = -100
        return dict(input_ids=input_ids, attention_mask=tokens['attention_mask'], labels=labels)

    def caption_loss(self, image_embeds: torch.Tensor, tokens: dict, reduction: str = 'mean',
                     image_kv: Optional[list] = None) -> torch.Tensor:
        """Label-smoothed LM loss of :meth:`caption_tokens`' ``tokens`` (``image_kv``: the
        images' cross-attention keys/values, if already projected)."""
        logits = self.text_decoder(tokens['input_ids'], tokens['attention_mask'],
                                   image_embeds=None if image_kv else image_embeds,
                                   image_kv=image_kv)
        return lm_loss(logits, tokens['labels'], self.label_smoothing, reduction)

    def generate_captions(self, images: torch.Tensor, **decoding) -> List[str]:
        """Captions of ``images``, prompt stripped; ``decoding`` as
        :func:`backbones.generation.generate_captions` (BLIP's defaults: beam 3, max 20,
        min 5)."""
        return generation.generate_captions(self, images, **decoding)

    def caption_logits(self, image_embeds: torch.Tensor, texts: Sequence[str]) -> dict:
        """A teacher-forced decoder pass over ``prompt + text``: ``{'input_ids',
        'attention_mask', 'logits', 'prompt_length'}`` (``[DEC]`` first; the logits at
        position ``t`` predict token ``t + 1``)."""
        tokens = self.caption_tokens(texts)
        logits = self.text_decoder(tokens['input_ids'], tokens['attention_mask'],
                                   image_embeds=image_embeds)
        return dict(input_ids=tokens['input_ids'], attention_mask=tokens['attention_mask'],
                    logits=logits, prompt_length=self.prompt_length)

    # ------------------------------------------------------------------ explanation
    def _cross_attending_model(self, head: str) -> MedTextModel:
        if head not in EXPLAINABLE_HEADS:
            raise ValueError(f'head must be one of {sorted(EXPLAINABLE_HEADS)}, got {head!r}')
        if EXPLAINABLE_HEADS[head] not in self.losses:
            raise ValueError(f"this model has no {head!r} head (losses={self.losses}); "
                             f"build it with {EXPLAINABLE_HEADS[head]!r} in losses")
        return self.text_encoder if head == 'itm' else self.text_decoder.bert

    def cross_attention_depth(self, head: str) -> int:
        """Number of cross-attention layers of ``head`` (``'itm'`` or ``'caption'``)."""
        return len(self._cross_attending_model(head).encoder.layer)

    @contextlib.contextmanager
    def capture_cross_attention(self, head: str, layers: Sequence[int]
                                ) -> Iterator[Dict[int, List[torch.Tensor]]]:
        """Keep ``head``'s cross-attention probabilities of ``layers`` (see
        :func:`backbones.med.capture_cross_attention`); scores are unchanged."""
        with capture_cross_attention(self._cross_attending_model(head), layers) as maps:
            yield maps

    def predict(self, images: torch.Tensor, data_samples: Optional[dict] = None) -> List[dict]:
        """Captions of ``images`` (BLIP's default decoding), one dict per image."""
        captions = self.generate_captions(images)
        ids = (data_samples or {}).get('image_id', [None] * len(captions))
        return [dict(image_id=int(i) if i is not None else None, caption=c)
                for i, c in zip(ids, captions)]
