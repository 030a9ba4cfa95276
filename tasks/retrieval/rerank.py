"""ITM re-ranking of candidate pairs, one image at a time with its keys/values reused.

An image's cross-attention keys/values (``model.image_key_values``) are computed
once and expanded (a view) along the batch over its candidate texts, which run in
chunks of ``itm_batch_size`` trimmed to their longest text. This is what makes a pair cost
~9 GFLOP instead of ~25 in BLIP-base at 384 px (DESIGN §7).

The chunks come in many (batch, length) shapes, and cuDNN's attention builds an execution
plan for every new shape: on an H100 (BLIP-base, bf16) that halved the re-ranking rate of a
first run (10k vs 22k pairs/s), so ITM attention runs on the other SDPA backends.
"""
from typing import Dict, List, Sequence

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..progress import ProgressMeter
from .candidates import CandidatePlan
from .features import trim_padding

ITM_ATTENTION_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                          SDPBackend.MATH]


@torch.no_grad()
@sdpa_kernel(ITM_ATTENTION_BACKENDS)
def itm_match_logits(model, image_embeds: torch.Tensor, input_ids: torch.Tensor,
                     attention_mask: torch.Tensor, itm_batch_size: int) -> torch.Tensor:
    """Raw ITM match logits (index 1) ``[n]`` of one image ``[1, tokens, width]`` with n texts.

    ``input_ids``/``attention_mask`` (``[n, L]``) stay on the CPU: each chunk is trimmed
    there and then copied to the image's device, so the accelerator is never waited on.
    """
    device = image_embeds.device
    image_kv = model.image_key_values(image_embeds)
    logits = []
    for start in range(0, input_ids.shape[0], itm_batch_size):
        chunk_ids, chunk_mask = trim_padding(input_ids[start:start + itm_batch_size],
                                             attention_mask[start:start + itm_batch_size])
        size = chunk_ids.shape[0]
        chunk_kv = [(keys.expand(size, -1, -1, -1), values.expand(size, -1, -1, -1))
                    for keys, values in image_kv]
        logits.append(model.itm_logits(chunk_ids.to(device, non_blocking=True),
                                       chunk_mask.to(device, non_blocking=True),
                                       image_kv=chunk_kv)[:, 1])
    return torch.cat(logits).float()


def rerank_block(model, image_indices: Sequence[int], image_embeds: torch.Tensor,
                 plan: CandidatePlan, tokens: Dict[str, torch.Tensor], itm_batch_size: int,
                 device: torch.device, progress: ProgressMeter) -> Dict[str, torch.Tensor]:
    """ITM logits of every candidate pair of a block of images.

    Args:
        image_indices: the block's dataset image indices.
        image_embeds: their ``[n, tokens, width]`` token embeddings (CPU); moved to
            ``device`` for this block only.
        plan: the candidate pairs.
        tokens: ``input_ids``/``attention_mask`` of all texts (CPU).
        itm_batch_size: texts per ITM forward pass.
        progress: advanced by the number of pairs scored.

    Returns:
        CPU tensors ``image_index``, ``text_index`` (long) and ``itm_logit`` (float32),
        one entry per pair.
    """
    block_embeds = image_embeds.to(device, non_blocking=True)
    image_columns: List[torch.Tensor] = []
    text_columns: List[torch.Tensor] = []
    logits: List[torch.Tensor] = []
    for row, image in enumerate(image_indices):
        texts = plan.texts_for_image(image)
        logits.append(itm_match_logits(model, block_embeds[row:row + 1], tokens['input_ids'][texts],
                                       tokens['attention_mask'][texts], itm_batch_size))
        image_columns.append(torch.full_like(texts, image))
        text_columns.append(texts)
        progress.update(len(texts))
    return dict(image_index=torch.cat(image_columns), text_index=torch.cat(text_columns),
                itm_logit=torch.cat(logits).cpu())
