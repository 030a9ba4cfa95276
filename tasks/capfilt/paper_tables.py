"""The BLIP paper's CapFilt ablations (Tables 1-2 and the decoding/sharing studies).

Each was pre-trained on 14M images with a bootstrapped (or plain) corpus and scored on COCO
Karpathy test captioning after fine-tuning (BLEU-4 and CIDEr ×100); ``noise_ratio`` is the
percentage of texts the filter removed. Variant names are our experiment configs' names.
"""
from harness.core.paper import PaperRow, PaperTable
from harness.core.registry import PAPER_TABLES

from ..caption.paper_tables import ABLATION_SOURCE, bleu_cider, coco_caption_ablation


@PAPER_TABLES.register_module(name='decoding')
def decoding_table() -> PaperTable:
    """Beam search vs nucleus sampling for the captioner's synthetic captions."""
    return coco_caption_ablation('decoding', 'Decoding method for synthetic captions', (
        PaperRow('none', 'None', bleu_cider(38.0, 127.8), ABLATION_SOURCE),
        PaperRow('beam', 'Beam', bleu_cider(38.4, 128.9), ABLATION_SOURCE, noise_ratio=19),
        PaperRow('nucleus', 'Nucleus', bleu_cider(38.6, 129.7), ABLATION_SOURCE,
                 noise_ratio=25),
    ))


@PAPER_TABLES.register_module(name='capfilt_sharing')
def capfilt_sharing_table() -> PaperTable:
    """Captioner and filter sharing their parameters or fine-tuned apart."""
    return coco_caption_ablation('capfilt_sharing', 'Captioner and filter: shared vs decoupled', (
        PaperRow('shared', 'Share parameters', bleu_cider(38.4, 129.0), ABLATION_SOURCE,
                 noise_ratio=8),
        PaperRow('decoupled', 'Decoupled', bleu_cider(38.6, 129.7), ABLATION_SOURCE,
                 noise_ratio=25),
    ))


@PAPER_TABLES.register_module(name='capfilt_effect')
def capfilt_effect_table() -> PaperTable:
    """CapFilt against simply training longer on as many (replicated) texts."""
    return coco_caption_ablation('capfilt_effect', 'CapFilt vs longer training on more texts', (
        PaperRow('no_capfilt', 'No CapFilt', bleu_cider(38.0, 127.8), ABLATION_SOURCE,
                 notes='15.3M texts'),
        PaperRow('replicated', 'Replicated data', bleu_cider(37.9, 127.7), ABLATION_SOURCE,
                 notes='24.7M texts (replicated)'),
        PaperRow('capfilt', 'CapFilt', bleu_cider(38.6, 129.7), ABLATION_SOURCE,
                 notes='24.7M texts'),
    ))
