"""The BLIP paper's captioning numbers: the headline CIDEr and Table 3 (parameter sharing).

Table 3 pre-trains on 14M images and scores COCO Karpathy test captioning after
fine-tuning, the protocol of this task, so its rows live here. BLEU-4 and CIDEr are ×100
as the paper prints them. Variant names are our experiment configs' variant names.
"""
from harness.core.paper import HeadlineNumber, PaperRow, PaperTable
from harness.core.registry import PAPER_TABLES
from harness.core.task_result import TIMES_100

ABLATION_SOURCE = 'paper (COCO, 14M images)'


def bleu_cider(bleu4: float, cider: float) -> dict[str, float]:
    """The two metrics the paper's ablation tables report."""
    return {'BLEU-4': bleu4, 'CIDEr': cider}


def coco_caption_ablation(name: str, title: str, rows: tuple[PaperRow, ...]) -> PaperTable:
    """An ablation table scored on COCO Karpathy test captioning (BLEU-4, CIDEr ×100)."""
    return PaperTable(name=name, title=title, task='caption', dataset='coco_karpathy',
                      split='test', units={'BLEU-4': TIMES_100, 'CIDEr': TIMES_100}, rows=rows)


@PAPER_TABLES.register_module(name='sharing')
def sharing_table() -> PaperTable:
    """Table 3: which layers the text encoder and decoder share during pre-training."""
    return coco_caption_ablation('sharing', 'Parameter sharing between text encoder and decoder', (
        PaperRow('all', 'All', bleu_cider(37.2, 125.9), ABLATION_SOURCE, params_m=224),
        PaperRow('all_but_ca', 'All but CA', bleu_cider(37.4, 126.1), ABLATION_SOURCE,
                 params_m=252),
        PaperRow('all_but_sa', 'All but SA', bleu_cider(38.0, 127.8), ABLATION_SOURCE,
                 params_m=252),
        PaperRow('none', 'None', bleu_cider(37.8, 127.4), ABLATION_SOURCE, params_m=361),
    ))


@PAPER_TABLES.register_module(name='headline_caption')
def caption_headline() -> tuple[HeadlineNumber, ...]:
    """The paper's best COCO captioning score."""
    return (HeadlineNumber('caption', 'coco_karpathy', 'test', 'CIDEr', 136.7, TIMES_100,
                           model='ViT-L'),)
