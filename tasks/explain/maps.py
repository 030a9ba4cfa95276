"""Where a model looks: ITM Grad-CAM and decoder cross-attention maps over image patches.

Both work through :class:`harness.core.model_api.CrossAttentionExplainable`, so any model
that captures its cross-attention gets them.

* **ITM Grad-CAM** (BLIP's demo): the gradient of the ITM match logit with respect to one
  cross-attention layer's probabilities, times those probabilities, clamped at 0 and
  averaged over heads: one map per text token. BLIP uses layer 8 of its 12 (0-based);
  :func:`default_layer` scales that index to other depths. The last layer is never a
  choice: ITM reads only the [ENC] token, and after the last cross-attention no other
  token reaches it, so every other token's gradient there is zero.
* **Decoder cross-attention**: the decoder's attention probabilities (averaged over
  heads) of a teacher-forced caption; the map of token ``t`` is the attention of the
  position that predicts it (``t - 1``), i.e. what the decoder looked at when emitting it.

The image's [CLS] token is dropped; the patch tokens are reshaped to their square grid.
"""
import dataclasses
import math
from typing import List

import numpy as np
import torch

BLIP_DEMO_LAYER, BLIP_DEPTH = 8, 12


def default_layer(depth: int) -> int:
    """BLIP's Grad-CAM layer (8 of 12, 0-based) scaled to ``depth``: ``round(8 * depth /
    12)``, but before the last layer (module docstring): 2 layers -> 0, 6 -> 4, 12 -> 8,
    24 -> 16."""
    return max(0, min(depth - 2, round(BLIP_DEMO_LAYER * depth / BLIP_DEPTH)))


def resolve_layer(model, head: str, layer) -> int:
    """``layer`` (negative counts from the end) or :func:`default_layer` when None."""
    depth = model.cross_attention_depth(head)
    if layer is None:
        return default_layer(depth)
    if not -depth <= layer < depth:
        raise ValueError(f'layer {layer} does not exist: the {head} head has {depth} '
                         f'cross-attention layers (0..{depth - 1})')
    return layer % depth


@dataclasses.dataclass
class TokenMaps:
    """Per-token maps of one text: ``tokens[i]`` owns ``maps[i]`` (``[h, w]``, >= 0).

    ``score`` is the ITM match probability (Grad-CAM) or the caption's mean token
    log-probability (decoder attention).
    """

    text: str
    tokens: List[str]
    maps: np.ndarray
    layer: int
    score: float

    def words(self) -> 'TokenMaps':
        """The same maps per word: WordPiece pieces (``##...``) averaged into their word."""
        words, groups = [], []
        for index, token in enumerate(self.tokens):
            if token.startswith('##') and words:
                words[-1] += token[2:]
                groups[-1].append(index)
            else:
                words.append(token)
                groups.append([index])
        maps = np.stack([self.maps[group].mean(axis=0) for group in groups]) if groups \
            else self.maps
        return dataclasses.replace(self, tokens=words, maps=maps)

    def phrase_map(self, phrase: str) -> np.ndarray:
        """Mean map of the words of ``phrase`` (their first occurrence, in order)."""
        words = self.words()
        wanted = phrase.lower().split()
        for start in range(len(words.tokens) - len(wanted) + 1):
            if words.tokens[start:start + len(wanted)] == wanted:
                return words.maps[start:start + len(wanted)].mean(axis=0)
        raise ValueError(f'phrase {phrase!r} is not in the text {self.text!r} '
                         f'(words: {words.tokens})')


def patch_maps(probs: torch.Tensor) -> np.ndarray:
    """``[Q, 1 + N]`` scores over image tokens -> ``[Q, side, side]`` patch maps."""
    patches = probs[:, 1:]
    side = math.isqrt(patches.shape[1])
    if side * side != patches.shape[1]:
        raise ValueError(f'{patches.shape[1]} image patch tokens do not form a square grid; '
                         f'maps need a square patch layout')
    return patches.reshape(-1, side, side).detach().float().cpu().numpy()


def token_strings(model, ids: torch.Tensor) -> List[str]:
    """Each id as its vocabulary string ('' for special tokens)."""
    return [model.tokenizer.decode([int(token)]).replace(' ', '') for token in ids]


def itm_gradcam(model, image_embeds: torch.Tensor, text: str, layer=None) -> TokenMaps:
    """ITM Grad-CAM of ``text`` on one image's tokens ``[1, 1 + N, width]`` (module
    docstring); one map per text token, [ENC]/[SEP] left out."""
    layer = resolve_layer(model, 'itm', layer)
    tokens = model.tokenize([text])
    image_embeds = image_embeds.detach().requires_grad_(True)
    with torch.enable_grad(), model.capture_cross_attention('itm', [layer]) as captured:
        logits = model.itm_logits(tokens['input_ids'], tokens['attention_mask'],
                                  image_embeds=image_embeds)
        probs = captured[layer][0]
        grad, = torch.autograd.grad(logits[0, 1], probs)
    cam = (grad * probs).clamp(min=0).mean(dim=1)[0]  # [Q, 1 + N]
    ids = tokens['input_ids'][0]
    keep = [index for index, token in enumerate(token_strings(model, ids)) if token]
    return TokenMaps(text=text, tokens=[token_strings(model, ids)[i] for i in keep],
                     maps=patch_maps(cam[keep]), layer=layer,
                     score=float(logits.detach().softmax(dim=-1)[0, 1]))


@torch.no_grad()
def caption_attention(model, image_embeds: torch.Tensor, caption: str, layer=None) -> TokenMaps:
    """Decoder cross-attention of ``caption`` (prompt excluded) on one image's tokens
    ``[1, 1 + N, width]``: the map of each caption token is what its prediction attended."""
    layer = resolve_layer(model, 'caption', layer)
    with model.capture_cross_attention('caption', [layer]) as captured:
        out = model.caption_logits(image_embeds, [caption])
    probs = captured[layer][0].mean(dim=1)[0]  # [L, 1 + N]
    ids = out['input_ids'][0]
    strings = token_strings(model, ids)
    positions = [t for t in range(out['prompt_length'], len(ids)) if strings[t]]
    log_probs = out['logits'][0].float().log_softmax(dim=-1)
    score = float(np.mean([log_probs[t - 1, ids[t]].item() for t in positions])) \
        if positions else float('nan')
    return TokenMaps(text=caption, tokens=[strings[t] for t in positions],
                     maps=patch_maps(probs[[t - 1 for t in positions]]), layer=layer,
                     score=score)
