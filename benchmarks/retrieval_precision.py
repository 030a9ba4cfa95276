"""Does bf16 change retrieval scores? One trained model, three precisions.

Runs BLIP's retrieval protocol on an experiment variant's retrieval test split (default:
the main job's ``all`` variant on ToyWorld) with one pre-trained checkpoint: at float32,
under bf16 autocast, and with the weights cast to bf16 (the retrieval task's
``weights_dtype='bfloat16'``). Prints, per setting, the recalls, the share of queries whose
top-1 candidate is float32's, the largest score difference to float32 over the pairs both
re-ranked, and the time, and writes them to ``agreement.md`` under ``--out``.

    python -m benchmarks.retrieval_precision --out /tmp/precision \\
        --checkpoint work_dirs/ablation_sharing/all/seed_0/pretrain/epoch_2.pth
"""
import argparse
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from harness.config import load_config
from harness.core.files import atomic_write_text
from harness.core.registry import DATASETS, FUNCTIONS, MODELS
from harness.core.tree import deep_merge
from harness.experiment import resolved_variant_config
from tasks.metrics.retrieval import retrieval_metrics
from tasks.retrieval import UNRANKED_SCORE
from tasks.retrieval.evaluate import scores_at_precision

SETTINGS = {'fp32': {}, 'bf16 autocast': dict(autocast_dtype='bfloat16'),
            'bf16 weights': dict(weights_dtype='bfloat16')}
REFERENCE = 'fp32'
RECALLS = ('TR@1', 'TR@5', 'IR@1', 'IR@5', 'R_mean')


def top1_agreement(scores, reference, direction: str) -> float:
    """The share of queries (``direction`` 'i2t' or 't2i') whose best-scored candidate is the
    same in ``scores`` and ``reference``."""
    mine, theirs = getattr(scores, direction), getattr(reference, direction)
    return (mine.argmax(dim=1) == theirs.argmax(dim=1)).float().mean().item()


def ranked_difference(scores: torch.Tensor, reference: torch.Tensor) -> float:
    """The largest score difference over the pairs both runs re-ranked (a pair only one run
    took into its top k holds :data:`UNRANKED_SCORE` in the other)."""
    both = (scores != UNRANKED_SCORE) & (reference != UNRANKED_SCORE)
    return (scores - reference)[both].abs().max().item() if both.any() else 0.0


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default='configs/ablation_sharing.py')
    parser.add_argument('--variant', default='all')
    parser.add_argument('--checkpoint', required=True, help='a pre-trained (ITC+ITM) checkpoint')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--out', type=Path, required=True, help='folder for agreement.md')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> list:
    """Evaluate in every setting, print and write the table; returns its rows."""
    args = parse_args(argv)
    cfg = resolved_variant_config(load_config(args.config), args.variant)
    model = MODELS.build(deep_merge(cfg['model'], cfg['retrieval_model']))
    FUNCTIONS.get('load_for_evaluation')(model, args.checkpoint, strict=True)
    model.to(args.device).eval()
    dataset = DATASETS.build(cfg['retrieval_test_dataset'])
    rows = ['| setting | ' + ' | '.join(RECALLS) + ' | top-1 as fp32 (i2t / t2i) | '
            'max score difference to fp32 (pairs both re-ranked) | seconds |',
            '|---' + '|---:' * (len(RECALLS) + 3) + '|']
    scores = {}
    for name, precision in SETTINGS.items():
        start = time.perf_counter()
        scores[name] = scores_at_precision(model, dataset, **precision, k=cfg['retrieval_k'],
                                           batch_size=cfg['eval_batch_size'], device=args.device)
        seconds = time.perf_counter() - start
        metrics = retrieval_metrics(scores[name].i2t, scores[name].t2i, dataset.img2txt,
                                    dataset.txt2img)
        reference = scores[REFERENCE]
        agreement = ' / '.join(f'{top1_agreement(scores[name], reference, d):.1%}'
                               for d in ('i2t', 't2i'))
        difference = max(ranked_difference(getattr(scores[name], d), getattr(reference, d))
                         for d in ('i2t', 't2i'))
        rows.append(f'| {name} | ' + ' | '.join(f'{metrics[m]:.2f}' for m in RECALLS) +
                    f' | {agreement} | {difference:.1e} | {seconds:.1f} |')
        print(rows[-1], flush=True)
    device = torch.cuda.get_device_name() if args.device.startswith('cuda') else args.device
    text = '\n'.join([f'{device}, torch {torch.__version__}, {args.config} variant '
                      f'{args.variant}, {args.checkpoint}, k={cfg["retrieval_k"]}, '
                      f'{len(dataset)} images, {len(dataset.texts)} texts', '', *rows, ''])
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / 'agreement.md', text)
    return rows


if __name__ == '__main__':
    main()
