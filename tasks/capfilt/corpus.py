"""Assembling pre-training corpora from scored pairs: CapFilt's and the size-matched control.

Corpora are BLIP pre-training annotation lists ``[{image, caption}]`` with image paths as
in the source files, so the corpus is read with the same ``data_root``/``image_root``.
"""
from pathlib import Path
from typing import List, Sequence

from harness.core.registry import FUNCTIONS

from ..datasets.annotations import TEXT, check_records, load_records

SOURCES = ('web', 'synthetic')


def read_pairs(path: Path) -> List[dict]:
    """The ``{image, caption}`` records of a BLIP pre-training annotation file (checked)."""
    records = load_records(Path(path))
    check_records(Path(path), records, required={'image': TEXT, 'caption': TEXT},
                  kind='image-caption')
    return [dict(image=record['image'], caption=record['caption']) for record in records]


def is_kept(score: dict, threshold: float) -> bool:
    """Whether the filter keeps a scored pair: ITM match probability above ``threshold``."""
    return score['p_match'] > threshold


def bootstrapped_corpus(human: Sequence[dict], scores: Sequence[dict],
                        threshold: float) -> List[dict]:
    """All human pairs, then the kept web pairs, then the kept synthetic pairs (score order)."""
    kept = {source: [dict(image=s['image'], caption=s['caption']) for s in scores
                     if s['source'] == source and is_kept(s, threshold)]
            for source in SOURCES}
    return [dict(pair) for pair in human] + kept['web'] + kept['synthetic']


@FUNCTIONS.register_module()
def replicated_corpus(human_file: Path, web_file: Path, size: int) -> List[dict]:
    """Human pairs plus web pairs repeated in file order until the corpus has ``size`` pairs.

    The control of BLIP's "CapFilt vs more samples" ablation: as many samples per epoch as
    the CapFilt corpus, but only the original (noisy) texts. Every pair is kept at least
    once, so when ``size`` is below human + web pairs the corpus is those pairs unrepeated.
    """
    human, web = read_pairs(human_file), read_pairs(web_file)
    web_slots = max(size - len(human), len(web))
    return human + [dict(web[i % len(web)]) for i in range(web_slots)]
