"""The BLIP paper's headline VQA number (VQAv2 test-dev accuracy, the metric of :mod:`.vqa`)."""
from harness.core.paper import HeadlineNumber
from harness.core.registry import PAPER_TABLES
from harness.core.task_result import PERCENT


@PAPER_TABLES.register_module(name='headline_vqa')
def vqa_headline() -> tuple[HeadlineNumber, ...]:
    """VQA accuracy on VQAv2 test-dev."""
    return (HeadlineNumber('vqa', 'vqav2', 'test-dev', 'accuracy', 78.25, PERCENT),)
