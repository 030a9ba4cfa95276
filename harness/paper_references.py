"""The BLIP paper's (Li et al. 2022) reference numbers, as data for leaderboard rows.

These are the paper's numbers, not our runs: the ablations were pre-trained on 14M images
and scored on COCO Karpathy test captioning after fine-tuning. Metric values use the
paper's scale (BLEU-4 and CIDEr ×100). Variant names follow our experiment configs'
variant names where an experiment reproduces the ablation.
"""
import dataclasses

ABLATION_SOURCE = 'paper (COCO, 14M images)'
HEADLINE_SOURCE = 'paper (headline results)'


@dataclasses.dataclass(frozen=True)
class PaperRow:
    """One row of a paper table.

    ``noise_ratio`` is the percentage of web texts the filter removed (the paper's "noise
    ratio"); ``notes`` carries free text such as corpus size.
    """

    variant: str
    paper_label: str
    metrics: dict[str, float]
    params_m: float | None = None
    noise_ratio: float | None = None
    notes: str = ''
    source: str = ABLATION_SOURCE


@dataclasses.dataclass(frozen=True)
class PaperTable:
    """A paper table: what it shows, on which task/dataset/split, and its rows."""

    name: str
    title: str
    task: str
    dataset: str
    split: str
    rows: tuple[PaperRow, ...]


def _coco_caption_table(name: str, title: str, rows: tuple[PaperRow, ...]) -> PaperTable:
    """An ablation table scored on COCO Karpathy test captioning (BLEU-4, CIDEr)."""
    return PaperTable(name=name, title=title, task='caption', dataset='coco_karpathy',
                      split='test', rows=rows)


def _bleu_cider(bleu4: float, cider: float) -> dict[str, float]:
    """The two metrics the paper's ablation tables report."""
    return {'BLEU-4': bleu4, 'CIDEr': cider}


PAPER_TABLES: dict[str, PaperTable] = {table.name: table for table in (
    _coco_caption_table('sharing', 'Parameter sharing between text encoder and decoder', (
        PaperRow('all', 'All', _bleu_cider(37.2, 125.9), params_m=224),
        PaperRow('all_but_ca', 'All but CA', _bleu_cider(37.4, 126.1), params_m=252),
        PaperRow('all_but_sa', 'All but SA', _bleu_cider(38.0, 127.8), params_m=252),
        PaperRow('none', 'None', _bleu_cider(37.8, 127.4), params_m=361),
    )),
    _coco_caption_table('decoding', 'Decoding method for synthetic captions', (
        PaperRow('none', 'None', _bleu_cider(38.0, 127.8)),
        PaperRow('beam', 'Beam', _bleu_cider(38.4, 128.9), noise_ratio=19),
        PaperRow('nucleus', 'Nucleus', _bleu_cider(38.6, 129.7), noise_ratio=25),
    )),
    _coco_caption_table('capfilt_sharing', 'Captioner and filter: shared vs decoupled', (
        PaperRow('shared', 'Share parameters', _bleu_cider(38.4, 129.0), noise_ratio=8),
        PaperRow('decoupled', 'Decoupled', _bleu_cider(38.6, 129.7), noise_ratio=25),
    )),
    _coco_caption_table('capfilt_effect', 'CapFilt vs longer training on more texts', (
        PaperRow('no_capfilt', 'No CapFilt', _bleu_cider(38.0, 127.8), notes='15.3M texts'),
        PaperRow('replicated', 'Replicated data', _bleu_cider(37.9, 127.7),
                 notes='24.7M texts (replicated)'),
        PaperRow('capfilt', 'CapFilt', _bleu_cider(38.6, 129.7), notes='24.7M texts'),
    )),
)}


@dataclasses.dataclass(frozen=True)
class HeadlineNumber:
    """One of the paper's headline results (not an ablation)."""

    task: str
    dataset: str
    split: str
    metric: str
    value: float
    model: str = ''
    source: str = HEADLINE_SOURCE


PAPER_HEADLINE: tuple[HeadlineNumber, ...] = (
    HeadlineNumber('caption', 'coco_karpathy', 'test', 'CIDEr', 136.7, model='ViT-L'),
    HeadlineNumber('vqa', 'vqav2', 'test-dev', 'accuracy', 78.25),
    HeadlineNumber('retrieval', 'coco_karpathy', 'test', 'TR@1', 82.4),
    HeadlineNumber('retrieval', 'coco_karpathy', 'test', 'IR@1', 66.5),
    HeadlineNumber('video_retrieval', 'msrvtt', 'test', 'R@1 (text→video, zero-shot)', 43.3),
)


def paper_table(name: str) -> PaperTable:
    """The paper table called ``name``; the error lists the known names."""
    if name not in PAPER_TABLES:
        raise ValueError(f'leaderboard.paper_reference={name!r} is not a paper table; use '
                         f"one of {sorted(PAPER_TABLES)}, 'headline', or leave it out")
    return PAPER_TABLES[name]
