"""A tiny BLIP's pre-training step with the LM loss through ``F.cross_entropy`` and through
our own backward (:mod:`backbones.next_token_loss`), alternating in one process.

The model is ``configs/ablation_sharing.py``'s tiny BLIP (its ``all`` variant) with
bert-base-uncased's 30524-word vocabulary (``--vocab``), trained on random 64-px images and
random captions of 6-15 words with AdamW, batch 32. Prints each implementation's median
milliseconds per step, the ratio, and whether both trained to the same weights (they should,
bit for bit). The loss's share of a step grows with the vocabulary: with ToyWorld's ~290
words, as the main job runs, the two take the same time. Torch's huge-page CPU allocations
(``THP_MEM_ALLOC_ENABLE=1`` in the environment) make the large logit tensors cheaper for
both::

    python -m benchmarks.bench_lm_loss [--steps 8] [--rounds 3] [--repeats 2] [--vocab DIR]
"""
import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from mmengine.config import Config

import backbones.med as med
from backbones.next_token_loss import shifted_cross_entropy, shifted_smoothed_cross_entropy
from benchmarks.models import add_vocab_argument, bert_vocab_dir
from benchmarks.synthetic import random_caption
from harness.core.registry import MODELS
from tasks.cache_keys import model_fingerprint

MAIN_JOB_CONFIG = Path(__file__).resolve().parents[1] / 'configs' / 'ablation_sharing.py'
IMPLEMENTATIONS = {'F.cross_entropy': shifted_cross_entropy,
                   'ours': shifted_smoothed_cross_entropy}


def main_job_model(vocab: str, seed: int = 0) -> torch.nn.Module:
    """The main job's tiny BLIP (``all`` variant) in train mode, seeded."""
    config = Config.fromfile(MAIN_JOB_CONFIG)
    model = dict(config.model, tokenizer=dict(type='BlipTokenizer', vocab=vocab),
                 sharing='all')
    torch.manual_seed(seed)
    return MODELS.build(model).train()


def timed_training(implementation, steps: int, rounds: int, vocab: str) -> tuple:
    """``(ms per step of each round, weights fingerprint)`` of training a fresh model."""
    med.shifted_smoothed_cross_entropy = implementation
    model = main_job_model(vocab)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(32, 3, 64, 64, generator=generator)
    texts = [random_caption(generator, int(length))
             for length in torch.randint(6, 16, (32,), generator=generator)]
    times = []
    for round_index in range(rounds + 1):  # the first round warms up
        start = time.perf_counter()
        for _ in range(steps):
            losses = model.loss(images, dict(text=texts))
            sum(losses.values()).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if round_index:
            times.append((time.perf_counter() - start) / steps * 1000)
    return times, model_fingerprint(model)


def main(argv=None) -> dict:
    """Alternate the two implementations ``--repeats`` times, print the comparison and
    return it (``ms_per_step`` of each, ``same_weights``)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=8, help='steps per timed round')
    parser.add_argument('--rounds', type=int, default=3, help='timed rounds per training')
    parser.add_argument('--repeats', type=int, default=2, help='trainings per implementation')
    add_vocab_argument(parser)
    args = parser.parse_args(argv)
    vocab = str(args.vocab or bert_vocab_dir())
    print(f'THP_MEM_ALLOC_ENABLE={os.environ.get("THP_MEM_ALLOC_ENABLE")}, '
          f'{torch.get_num_threads()} threads, torch {torch.__version__}')
    times = {name: [] for name in IMPLEMENTATIONS}
    digests = {name: set() for name in IMPLEMENTATIONS}
    try:
        for _ in range(args.repeats):
            for name, implementation in IMPLEMENTATIONS.items():
                round_times, digest = timed_training(implementation, args.steps, args.rounds,
                                                     vocab)
                times[name] += round_times
                digests[name].add(digest)
    finally:
        med.shifted_smoothed_cross_entropy = IMPLEMENTATIONS['ours']
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f'{name:>16}: {medians[name]:.1f} ms/step (rounds: '
              f'{", ".join(f"{value:.0f}" for value in values)})')
    same_weights = digests['ours'] == digests['F.cross_entropy']
    print(f'ours / F.cross_entropy: {medians["ours"] / medians["F.cross_entropy"]:.3f}; '
          f'same weights after training: {same_weights}')
    return dict(ms_per_step=medians, same_weights=same_weights)


if __name__ == '__main__':
    main()
