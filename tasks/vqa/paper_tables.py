"""The BLIP paper's VQAv2 rows (Table 8), scored by the official VQA server.

Only values checked against a copy of the paper's results are listed: the ViT-B model
pre-trained on 129M images with CapFilt-L (test-dev 78.25, test-std 78.32, also the
accuracy of the released ``model_base_vqa_capfilt_large.pth``). The 14M and 129M rows
without CapFilt-L could not be checked and are left out rather than quoted from memory.
"""
from harness.core.paper import HeadlineNumber, PaperRow, PaperTable
from harness.core.registry import PAPER_TABLES
from harness.core.task_result import PERCENT

VQA_SOURCE = 'paper (BLIP Table 8, VQAv2 server)'


@PAPER_TABLES.register_module(name='vqa')
def vqa_table() -> PaperTable:
    """Table 8: VQAv2 accuracy of BLIP fine-tuned on VQAv2 + Visual Genome (rank inference)."""
    return PaperTable(
        name='vqa', title='VQAv2 after fine-tuning (official accuracy)', task='vqa',
        dataset='vqav2', split='test-dev',
        units={'accuracy': PERCENT, 'accuracy (test-std)': PERCENT}, rows=(
            PaperRow('blip_129m_vitb_capfilt_l', 'BLIP, 129M images, ViT-B, CapFilt-L',
                     {'accuracy': 78.25, 'accuracy (test-std)': 78.32}, VQA_SOURCE),
        ))


@PAPER_TABLES.register_module(name='headline_vqa')
def vqa_headline() -> tuple[HeadlineNumber, ...]:
    """VQA accuracy on VQAv2 test-dev."""
    return (HeadlineNumber('vqa', 'vqav2', 'test-dev', 'accuracy', 78.25, PERCENT),)
