"""Do CUDA-graph decoding steps change captions? One trained captioner, four ways.

Captions the caption test split of an experiment variant (default: the main job's ``all``
variant on ToyWorld) with one fine-tuned checkpoint: with the cached decoder and with
``cuda_graphs=True`` (:mod:`backbones.static_decoding`), each in fp32 and with bf16
weights, BLIP's beam-3 settings. Writes ``captions.json`` (captions, images/s, settings)
under ``--out``. ``--score DIR`` (where pycocoevalcap runs: the GPU machine lacks it)
prints, per setting, the share of captions identical to the fp32 cached decoder's and
CIDEr / BLEU-4, and writes ``agreement.md`` next to the captions.

    python -m benchmarks.caption_graph_agreement --device cuda --out /tmp/agree \\
        --checkpoint work_dirs/ablation_sharing/all/seed_0/finetune_caption/epoch_1.pth
    python -m benchmarks.caption_graph_agreement --score /tmp/agree
"""
import argparse
import json
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from harness.config import load_config
from harness.core.files import atomic_write_text
from harness.core.registry import DATASETS, FUNCTIONS, MODELS
from harness.core.tree import deep_merge
from harness.experiment import resolved_variant_config

SETTINGS = (('fp32', False), ('fp32', True), ('bf16', False), ('bf16', True))
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16}
REFERENCE = 'fp32, cached'


def setting_name(precision: str, cuda_graphs: bool) -> str:
    """``'bf16, CUDA graphs'`` and the like."""
    return f'{precision}, {"CUDA graphs" if cuda_graphs else "cached"}'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default='configs/ablation_sharing.py')
    parser.add_argument('--variant', default='all')
    parser.add_argument('--checkpoint', help='the fine-tuned captioning checkpoint')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--out', type=Path, help='folder for captions.json')
    parser.add_argument('--score', type=Path, help='score the captions.json in this folder')
    args = parser.parse_args(argv)
    if (args.score is None) == (args.checkpoint is None or args.out is None):
        parser.error('give either --checkpoint and --out (caption) or --score DIR')
    return args


def resolved_config(config: str, variant: str) -> dict:
    """The variant's resolved config (generates ToyWorld when it is the data source)."""
    return resolved_variant_config(load_config(config), variant)


@torch.no_grad()
def caption_all(model, loader, device: str, dtype: torch.dtype, cuda_graphs: bool):
    """Captions ``[{'image_id', 'caption'}]`` of every image and the images/s."""
    predictions, seconds = [], 0.0
    for batch in loader:
        images = batch['image'].to(device, dtype)
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        start = time.perf_counter()
        captions = model.generate_captions(images, cuda_graphs=cuda_graphs)
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        seconds += time.perf_counter() - start
        predictions += [dict(image_id=image_id, caption=caption)
                        for image_id, caption in zip(batch['image_id'].tolist(), captions)]
    return predictions, len(predictions) / seconds


def caption(args) -> None:
    """Caption the split in every setting; write ``captions.json``."""
    cfg = resolved_config(args.config, args.variant)
    model = MODELS.build(deep_merge(cfg['model'], cfg['caption_model']))
    FUNCTIONS.get('load_for_evaluation')(model, args.checkpoint, strict=True)
    model.eval()
    dataset = DATASETS.build(cfg['caption_test_dataset'])
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch)
    results = {}
    for precision, cuda_graphs in SETTINGS:
        model.to(args.device, DTYPES[precision])
        predictions, rate = caption_all(model, loader, args.device, DTYPES[precision],
                                        cuda_graphs)
        results[setting_name(precision, cuda_graphs)] = dict(predictions=predictions,
                                                             images_per_s=rate)
        print(f'{setting_name(precision, cuda_graphs):20s} {rate:8.1f} img/s')
    device_name = (torch.cuda.get_device_name() if args.device.startswith('cuda')
                   else args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / 'captions.json', json.dumps(dict(
        config=args.config, variant=args.variant, checkpoint=str(args.checkpoint),
        device=device_name, torch=torch.__version__, batch=args.batch,
        results=results), indent=1))


def agreement_rows(results: Dict[str, dict], gt_file: str) -> List[str]:
    """Markdown rows: setting, identical share, CIDEr, BLEU-4, images/s."""
    from tasks.metrics.caption import coco_caption_metrics
    reference = {p['image_id']: p['caption'] for p in results[REFERENCE]['predictions']}
    rows = ['| setting | captions identical to fp32 cached | CIDEr | BLEU-4 | img/s |',
            '|---|---:|---:|---:|---:|']
    for name, result in results.items():
        predictions = result['predictions']
        same = sum(reference[p['image_id']] == p['caption'] for p in predictions)
        scores = coco_caption_metrics(gt_file, predictions, ('BLEU', 'CIDEr')).scores
        rows.append(f'| {name} | {same}/{len(predictions)} | {100 * scores["CIDEr"]:.2f} | '
                    f'{100 * scores["BLEU-4"]:.2f} | {result["images_per_s"]:.1f} |')
    return rows


def score(folder: Path) -> None:
    """Print and write ``agreement.md`` for ``folder/captions.json``."""
    run = json.loads((folder / 'captions.json').read_text())
    cfg = resolved_config(run['config'], run['variant'])
    rows = agreement_rows(run['results'], DATASETS.build(cfg['caption_test_dataset']).gt_file)
    text = '\n'.join([f'{run["device"]}, torch {run["torch"]}, batch {run["batch"]}, '
                      f'{run["config"]} variant {run["variant"]}, {run["checkpoint"]}', '',
                      *rows, ''])
    atomic_write_text(folder / 'agreement.md', text)
    print(text)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Caption, or score captions already made."""
    args = parse_args(argv)
    if args.score is not None:
        score(args.score)
    else:
        caption(args)


if __name__ == '__main__':
    main()
