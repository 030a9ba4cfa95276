"""Feature extraction for retrieval: ITC features of images/videos and texts, ITM tokens.

Images give ``model.image_features`` of their tokens. Videos follow BLIP's zero-shot video
protocol: every frame is encoded, the per-frame projected [CLS] are averaged and then
normalised (ITC), and the token sequences of all frames are concatenated (ITM cross-attends
to all of them). Token embeddings go to the CPU batch by batch: a whole test split of them
never sits on the accelerator.

All functions run under ``torch.no_grad`` and respect an enclosing ``torch.autocast``; ITC
features are returned in float32.
"""
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..datasets.device_decode import images_on_device
from ..progress import ProgressMeter


@dataclass
class VisualFeatures:
    """Features of some images (or videos) of a dataset.

    Attributes:
        index: ``[n]`` dataset indices of the rows.
        feats: ``[n, embed_dim]`` float32 normalised ITC features (CPU).
        embeds: ``[n, tokens, width]`` token embeddings for ITM (CPU; in the autocast dtype
            when extracted under autocast, else the model's).
        unit: what an item is in progress lines and rates (``'img'``, ``'videos'``).
        rate: items encoded per second (0 when none were).
    """

    index: torch.Tensor
    feats: torch.Tensor
    embeds: torch.Tensor
    unit: str = 'img'
    rate: float = 0.0

    def rows_of(self, dataset_indices: Sequence[int]) -> torch.Tensor:
        """Token embeddings of the given dataset indices, in that order (a view when they
        are consecutive rows, as a block's images are)."""
        position = {int(i): row for row, i in enumerate(self.index.tolist())}
        rows = [position[int(i)] for i in dataset_indices]
        if rows and rows == list(range(rows[0], rows[0] + len(rows))):
            return self.embeds[rows[0]:rows[0] + len(rows)]
        return self.embeds[rows]


def encode_visual_batch(model, batch: Dict, device: torch.device
                        ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dataset indices, ITC features, ITM token embeddings)`` of a collated batch.

    ``batch`` holds ``image [B, 3, S, S]`` (or encoded images, decoded on ``device``) +
    ``image_index``, or ``video [B, T, 3, S, S]`` + ``video_index``.
    """
    if 'video' in batch:
        videos = batch['video'].to(device, non_blocking=True)
        num_videos, num_frames = videos.shape[:2]
        frame_embeds = model.encode_image(videos.flatten(0, 1))
        frame_proj = model.image_projection(frame_embeds).float()
        feats = F.normalize(frame_proj.view(num_videos, num_frames, -1).mean(dim=1), dim=-1)
        embeds = frame_embeds.reshape(num_videos, -1, frame_embeds.shape[-1])
        return torch.as_tensor(batch['video_index']), feats, embeds
    if 'image' not in batch:
        raise KeyError(f'retrieval dataset items need an "image" or a "video" tensor; got keys '
                       f'{sorted(batch)}')
    embeds = model.encode_image(images_on_device(batch['image'], device))
    return torch.as_tensor(batch['image_index']), model.image_features(embeds).float(), embeds


@torch.no_grad()
def extract_visual_features(model, dataset, batches: List[List[int]], device: torch.device,
                            num_workers: int = 0) -> VisualFeatures:
    """Encode the dataset items listed in ``batches`` (lists of dataset indices).

    A dataset's ``item_unit`` attribute names its items in the progress line (default
    ``'img'``; video sets say ``'videos'``); its ``collate_fn``, if any, makes the batches.
    """
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=num_workers,
                        collate_fn=getattr(dataset, 'collate_fn', None),
                        pin_memory=device.type == 'cuda')
    unit = getattr(dataset, 'item_unit', 'img')
    total = sum(map(len, batches))
    progress = ProgressMeter(total, 'retrieval visual features', unit=unit)
    # Under autocast, ITM casts the tokens to the autocast dtype anyway: store them so.
    embeds_dtype = torch.get_autocast_dtype(device.type) \
        if torch.is_autocast_enabled(device.type) else None
    indices, feats = [], []
    embeds, filled = None, 0
    for batch in loader:
        batch_index, batch_feats, batch_embeds = encode_visual_batch(model, batch, device)
        # Cast where the tokens are: a blocking copy to the CPU would convert them there,
        # after copying twice the bytes (H200: 0.4 GB/s of bf16 tokens end to end).
        batch_embeds = batch_embeds.to(embeds_dtype or batch_embeds.dtype)
        if embeds is None:  # one host tensor for all rows: no concatenating copy at the end
            embeds = torch.empty(total, *batch_embeds.shape[1:], dtype=batch_embeds.dtype)
        embeds[filled:filled + len(batch_index)].copy_(batch_embeds)
        filled += len(batch_index)
        indices.append(batch_index)
        feats.append(batch_feats.cpu())
        progress.update(len(batch_index))
    if filled != total:  # rows left unwritten would be garbage scored as images
        raise RuntimeError(f'{type(dataset).__name__}: the loader gave {filled} of the {total} '
                           f'items asked for; its collate_fn must keep every item of a batch')
    if not indices:
        return VisualFeatures(torch.empty(0, dtype=torch.long), torch.empty(0), torch.empty(0),
                              unit)
    return VisualFeatures(torch.cat(indices), torch.cat(feats), embeds, unit, progress.rate)


def tokenize_texts(model, texts: Sequence[str], max_length: int) -> Dict[str, torch.Tensor]:
    """CPU ``input_ids``/``attention_mask`` of all texts, padded to ``max_length``."""
    return model.tokenizer(list(texts), max_length, padding='max_length')


def trim_padding(input_ids: torch.Tensor, attention_mask: torch.Tensor
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Drop the trailing columns that are padding in every row (results are unchanged)."""
    length = int(attention_mask.sum(dim=1).max())
    return input_ids[:, :length], attention_mask[:, :length]


@torch.no_grad()
def extract_text_features(model, tokens: Dict[str, torch.Tensor], batches: List[List[int]],
                          device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(text indices, float32 ITC features on CPU)`` of the texts listed in ``batches``."""
    progress = ProgressMeter(sum(map(len, batches)), 'retrieval text features', unit='text')
    indices, feats = [], []
    for batch in batches:
        index = torch.as_tensor(batch, dtype=torch.long)
        input_ids, attention_mask = trim_padding(tokens['input_ids'][index],
                                                 tokens['attention_mask'][index])
        feats.append(model.text_features(input_ids.to(device), attention_mask.to(device))
                     .float().cpu())
        indices.append(index)
        progress.update(len(batch))
    if not indices:
        return torch.empty(0, dtype=torch.long), torch.empty(0)
    return torch.cat(indices), torch.cat(feats)
