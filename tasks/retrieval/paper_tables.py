"""The BLIP paper's headline retrieval numbers (COCO image-text; video: tasks/video)."""
from harness.core.paper import HeadlineNumber
from harness.core.registry import PAPER_TABLES
from harness.core.task_result import PERCENT


@PAPER_TABLES.register_module(name='headline_retrieval')
def retrieval_headline() -> tuple[HeadlineNumber, ...]:
    """Recall@1 on COCO Karpathy test (fine-tuned)."""
    return (
        HeadlineNumber('retrieval', 'coco_karpathy', 'test', 'TR@1', 82.4, PERCENT),
        HeadlineNumber('retrieval', 'coco_karpathy', 'test', 'IR@1', 66.5, PERCENT),
    )
