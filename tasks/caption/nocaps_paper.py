"""The BLIP paper's NoCaps validation numbers (Li et al. 2022, Table 7), as plain data.

Paper numbers, not our runs: BLIP captioners fine-tuned on COCO, evaluated zero-shot on
NoCaps val by the official server; CIDEr and SPICE ×100 per domain and overall, keyed by
the metric names :func:`tasks.caption.nocaps.score_nocaps` records. Only values checked
against a copy of the table are listed; a metric left out is one we could not verify
(the board shows it as a dash). Table 7's 14M ViT-B and 129M ViT-B rows are missing for
that reason.
"""
from harness.core.registry import PAPER_TABLES

SOURCE = 'paper (BLIP Table 7, NoCaps val)'
NOCAPS_PAPER_TABLE = dict(name='nocaps', task='nocaps', dataset='nocaps', split='val',
                          title='Zero-shot NoCaps validation after COCO fine-tuning')
NOCAPS_PAPER_ROWS = (
    dict(variant='blip_129m_vitb_capfilt_l', model='BLIP, 129M images, ViT-B, CapFilt-L',
         source=SOURCE,
         metrics={'in-domain_CIDEr': 111.8, 'in-domain_SPICE': 14.9,
                  'near-domain_CIDEr': 108.6, 'near-domain_SPICE': 14.8,
                  'out-domain_CIDEr': 111.5, 'out-domain_SPICE': 14.2}),
    dict(variant='blip_129m_vitl_capfilt_l', model='BLIP, 129M images, ViT-L, CapFilt-L',
         source=SOURCE,
         metrics={'in-domain_CIDEr': 114.9, 'in-domain_SPICE': 15.2,
                  'near-domain_CIDEr': 112.1, 'near-domain_SPICE': 14.9,
                  'out-domain_CIDEr': 115.3, 'out-domain_SPICE': 14.4,
                  'overall_CIDEr': 113.2}),
)


@PAPER_TABLES.register_module(name='nocaps')
def nocaps_paper_rows() -> dict:
    """The NoCaps reference table: what it shows (``NOCAPS_PAPER_TABLE``) and its rows."""
    return dict(NOCAPS_PAPER_TABLE, rows=[dict(row, metrics=dict(row['metrics']))
                                          for row in NOCAPS_PAPER_ROWS])
