"""The ``explain`` task (maps and pictures for given images and texts) and the
``grounding`` task (a pointing game on images whose objects have boxes).

``explain`` writes, per image, under ``out_dir`` (default ``work_dir``): for its text (when
given) ``itm_gradcam.npy`` (``[words, h, w]``), ``itm_gradcam_words.json``, one
``itm_<i>_<word>.png`` per word and ``itm_grid.png``; for its generated caption
``caption_attention.npy``, ``caption_words.json`` and ``caption_grid.png``.

``grounding`` names each object by its phrase (``'red circle'``) in the text ``'a red
circle'`` and scores two maps of the phrase's words with :func:`.pointing.pointing_game`:
ITM Grad-CAM, and the decoder's cross-attention while it is teacher-forced on the text
(after the model's caption prompt). The chance level (box area share) is reported as the
baseline beside each.
"""
import io
import pathlib
import time
from typing import Optional

import numpy as np
import torch

from harness.core.files import atomic_write_bytes, atomic_write_json
from harness.core.registry import TASKS
from harness.core.task_result import PERCENT, Metric, TaskResult

from .maps import TokenMaps, caption_attention, itm_gradcam, resolve_layer
from .overlays import display_image, grid_png, overlay_png
from .pointing import pointing_game

# BLIP's demo decodes explained captions greedily; beams would not change what is shown.
EXPLAIN_DECODING = dict(method='greedy', max_length=20, min_length=5)
METHODS = {'ITM Grad-CAM': 'itm', 'decoder attention': 'caption'}


def save_npy(path: pathlib.Path, array: np.ndarray) -> None:
    """Write ``array`` as ``.npy`` atomically."""
    buffer = io.BytesIO()
    np.save(buffer, array.astype(np.float32))
    atomic_write_bytes(path, buffer.getvalue())


def save_maps(folder: pathlib.Path, stem: str, image: np.ndarray, maps: TokenMaps,
              per_word: bool) -> list:
    """Write one text's word maps (``.npy``, words ``.json``, grid PNG, per-word PNGs)."""
    words = maps.words()
    paths = [folder / f'{stem}.npy', folder / f'{stem}_words.json', folder / f'{stem}_grid.png']
    save_npy(paths[0], words.maps)
    atomic_write_json(paths[1], dict(text=maps.text, words=words.tokens, layer=maps.layer,
                                     score=maps.score))
    grid_png(paths[2], image, maps, f'{maps.text!r} (layer {maps.layer})')
    if per_word:
        for index, (word, saliency) in enumerate(zip(words.tokens, words.maps)):
            path = folder / f'{stem}_{index:02d}_{"".join(c for c in word if c.isalnum())}.png'
            overlay_png(path, image, saliency, word)
            paths.append(path)
    return paths


@TASKS.register_module(name='explain')
def evaluate_explain(model, dataset, *, device='cpu', work_dir=None, cache_key=None,
                     out_dir=None, layer: Optional[int] = None,
                     caption_layer: Optional[int] = None, caption: bool = True,
                     decoding: Optional[dict] = None) -> TaskResult:
    """Maps and overlays for every image of ``dataset`` (items ``{'image', 'image_id',
    'text'}``, e.g. ``ExplainImages``); see the module docstring for the files.

    Args:
        layer: the ITM Grad-CAM layer (default: BLIP's demo layer scaled to the depth).
        caption_layer: the decoder layer whose attention is shown (default: likewise).
        caption: also caption each image and map its words (needs a decoder).
        decoding: caption decoding options (default greedy, 5-20 tokens).
    """
    out_dir = pathlib.Path(out_dir or work_dir or '')
    if not str(out_dir):
        raise ValueError('explain: give out_dir (or a work_dir) for the maps and pictures')
    started, scores, files = time.perf_counter(), [], []
    for index in range(len(dataset)):
        item = dataset[index]
        image_embeds = model.encode_image(item['image'][None].to(device))
        picture = display_image(dataset.media_path(index), item['image'].shape[-1])
        folder = out_dir / f'{index:04d}_{dataset.media_path(index).stem}'
        if item.get('text'):
            maps = itm_gradcam(model, image_embeds, item['text'], layer)
            scores.append(maps.score)
            files += save_maps(folder, 'itm_gradcam', picture, maps, per_word=True)
        if caption:
            text = model.generate_captions(item['image'][None].to(device),
                                           **dict(EXPLAIN_DECODING, **(decoding or {})))[0]
            maps = caption_attention(model, image_embeds, text, caption_layer)
            files += save_maps(folder, 'caption_attention', picture, maps, per_word=True)
    metrics = {'ITM match': Metric(100 * float(np.mean(scores)) if scores else None, PERCENT)}
    return TaskResult(metrics=metrics, counts={'images': len(dataset)},
                      throughput={'images/s': len(dataset) / (time.perf_counter() - started)},
                      outputs={'files': [str(path) for path in files]})


def phrase_maps(model, image_embeds: torch.Tensor, text: str, phrase: str, layer,
                caption_layer) -> dict:
    """``{method: [h, w] map of the phrase's words}`` for every method in :data:`METHODS`."""
    return {'ITM Grad-CAM': itm_gradcam(model, image_embeds, text, layer).phrase_map(phrase),
            'decoder attention': caption_attention(model, image_embeds, text,
                                                   caption_layer).phrase_map(phrase)}


@TASKS.register_module(name='grounding')
def evaluate_grounding(model, dataset, *, device='cpu', work_dir=None, cache_key=None,
                       layer: Optional[int] = None, caption_layer: Optional[int] = None,
                       examples: int = 4) -> TaskResult:
    """Pointing game on a ``GroundingDataset`` (see the module docstring).

    Returns per method ``<method> · pointing`` (share of phrases whose map peaks inside
    the box, %) and ``<method> · mass`` (mean share of map mass inside the box, %), per
    phrase scores, and the chance level (mean box area share) as their baseline. The first
    ``examples`` images' overlays (box drawn) go to ``work_dir/examples``.
    """
    started = time.perf_counter()
    per_sample = {f'{method} · {what}': {} for method in METHODS for what in ('pointing', 'mass')}
    chance = {}
    for index in range(len(dataset)):
        item = dataset[index]
        image_embeds = model.encode_image(item['image'][None].to(device))
        for obj in dataset.objects[index]:
            key = f'{item["image_id"]}:{obj["phrase"]}'
            maps = phrase_maps(model, image_embeds, f'a {obj["phrase"]}', obj['phrase'],
                               layer, caption_layer)
            for method, saliency in maps.items():
                score = pointing_game(saliency, obj['box'])
                per_sample[f'{method} · pointing'][key] = 100.0 * score.hit
                per_sample[f'{method} · mass'][key] = 100.0 * score.mass_share
                chance[key] = 100.0 * score.chance
                if index < examples and work_dir is not None:
                    picture = display_image(dataset.media_path(index), item['image'].shape[-1])
                    slug = f'{item["image_id"]}_{obj["phrase"].replace(" ", "_")}'
                    overlay_png(pathlib.Path(work_dir) / 'examples' /
                                f'{slug}_{METHODS[method]}.png', picture, saliency,
                                f'{obj["phrase"]} · {method}', obj['box'])
    metrics = {name: Metric(float(np.mean(list(scores.values()))) if scores else None, PERCENT)
               for name, scores in per_sample.items()}
    baseline = float(np.mean(list(chance.values()))) if chance else 0.0
    return TaskResult(
        metrics=metrics, per_sample=per_sample,
        counts={'images': len(dataset), 'phrases': len(chance)},
        throughput={'phrases/s': len(chance) / (time.perf_counter() - started)},
        baselines={name: baseline for name in per_sample},
        baseline_basis='chance: the box area share (a map that points at random)',
        baseline_per_sample={name: dict(chance) for name in per_sample},
        outputs={'layers': {'ITM Grad-CAM': resolve_layer(model, 'itm', layer),
                            'decoder attention': resolve_layer(model, 'caption', caption_layer)}})
