"""The BLIP paper's captioning numbers: the headline CIDEr, Table 3 (parameter sharing) and
Table 7's zero-shot NoCaps validation rows.

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


NOCAPS_SOURCE = 'paper (BLIP Table 7, NoCaps val)'
NOCAPS_METRICS = tuple(f'{domain}_{metric}' for domain in
                       ('in-domain', 'near-domain', 'out-domain', 'overall')
                       for metric in ('CIDEr', 'SPICE'))


@PAPER_TABLES.register_module(name='nocaps')
def nocaps_table() -> PaperTable:
    """Table 7: COCO-fine-tuned captioners on NoCaps val, zero-shot, per domain.

    Only values checked against a copy of the table are listed (two consistent mirrors of
    the paper's results); a metric left out shows as a dash. The 14M ViT-B and 129M ViT-B
    rows, and the 129M ViT-B CapFilt-L overall scores, could not be checked and are left out.
    """
    return PaperTable(
        name='nocaps', title='Zero-shot NoCaps validation after COCO fine-tuning',
        task='nocaps', dataset='nocaps', split='val',
        units={metric: TIMES_100 for metric in NOCAPS_METRICS}, rows=(
            PaperRow('blip_129m_vitb_capfilt_l', 'BLIP, 129M images, ViT-B, CapFilt-L', {
                'in-domain_CIDEr': 111.8, 'in-domain_SPICE': 14.9,
                'near-domain_CIDEr': 108.6, 'near-domain_SPICE': 14.8,
                'out-domain_CIDEr': 111.5, 'out-domain_SPICE': 14.2}, NOCAPS_SOURCE),
            PaperRow('blip_129m_vitl_capfilt_l', 'BLIP, 129M images, ViT-L, CapFilt-L', {
                'in-domain_CIDEr': 114.9, 'in-domain_SPICE': 15.2,
                'near-domain_CIDEr': 112.1, 'near-domain_SPICE': 14.9,
                'out-domain_CIDEr': 115.3, 'out-domain_SPICE': 14.4,
                'overall_CIDEr': 113.2}, NOCAPS_SOURCE),
        ))
