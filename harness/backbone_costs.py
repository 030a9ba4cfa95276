"""What each image-encoder swap costs at real shapes, before running it: a Markdown table.

Rows are BLIP-base, BLIP-large and BLIP-base with open_clip CLIP towers, each built from
its model config alone: parameters of the whole model (momentum copies excluded, as the
paper counts; built on the meta device, so nothing is allocated) and of the image encoder,
and the image encoder's GFLOPs (fvcore, multiply-adds, see :mod:`harness.flops`) for one
image at 224 and 384 px (the encoder alone is built on the CPU for that: fvcore traces
real tensors). Nothing downloads; the tokenizer needs a bert-base-uncased vocabulary.

    python -m harness.backbone_costs --vocab /models/bert-base-uncased [--out costs.md]
"""
import argparse
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from harness.config import load_config, resolve_config
from harness.core.files import atomic_write_text
from harness.core.registry import MODELS
from harness.flops import count_flops, count_parameters

BASE = 'configs/_base_/models/blip_base.py'
LARGE = 'configs/_base_/models/blip_large.py'
# Row name -> (model config file, replacement image encoder or None).
SWAPS: Dict[str, tuple] = {
    'BLIP-base (ViT-B/16)': (BASE, None),
    'BLIP-large (ViT-L/16)': (LARGE, None),
    'BLIP-base + CLIP ViT-B-16 tower': (BASE, dict(type='OpenClipTower', model_name='ViT-B-16')),
    'BLIP-base + CLIP ViT-L-14 tower': (BASE, dict(type='OpenClipTower', model_name='ViT-L-14')),
}
SIZES = (224, 384)


def model_config(config_file: str, vocab: str, vision: Optional[dict] = None) -> dict:
    """The resolved ``model`` of a model config file, its image encoder replaced by ``vision``."""
    model = resolve_config(load_config(config_file, dict(bert_dir=vocab)))['model']
    return dict(model, vision=vision) if vision else model


def encoder_gflops(vision: dict, size: int) -> float:
    """GFLOPs of one ``size``-px image through the image encoder ``vision`` (random weights)."""
    encoder = MODELS.build(dict(vision, image_size=size)).eval()
    return count_flops(encoder, torch.zeros(1, 3, size, size)) / 1e9


def cost_row(name: str, model: dict, sizes: Sequence[int] = SIZES) -> List[str]:
    """``[name, width, params (M), encoder params (M), GFLOPs per size...]`` of one model."""
    with torch.device('meta'):
        blip = MODELS.build(model)
    encoder = blip.visual_encoder
    return [name, str(encoder.embed_dim), f'{blip.num_parameters() / 1e6:.1f}',
            f'{count_parameters(encoder) / 1e6:.1f}',
            *(f'{encoder_gflops(model["vision"], size):.1f}' for size in sizes)]


def cost_table(vocab: str, sizes: Sequence[int] = SIZES) -> str:
    """The Markdown table of every row of :data:`SWAPS`."""
    header = ['Model', 'Image width', 'Params (M)', 'Image encoder (M)',
              *(f'GFLOPs @{size}' for size in sizes)]
    rows = [cost_row(name, model_config(path, vocab, vision), sizes)
            for name, (path, vision) in SWAPS.items()]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines) + ('\n\nParams: the pre-training model (ITC+ITM+LM heads, text '
                               'encoder and decoder sharing all but self-attention; momentum '
                               'copies excluded). GFLOPs: the image encoder for one image, '
                               'multiply-adds (fvcore).\n')


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Print the table (and write it to ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--vocab', required=True, help='a bert-base-uncased vocabulary folder')
    parser.add_argument('--out', type=Path, help='also write the table to this file')
    args = parser.parse_args(argv)
    table = cost_table(args.vocab)
    print(table)
    if args.out:
        atomic_write_text(args.out, table)


if __name__ == '__main__':
    main()
