"""The BLIP paper's zero-shot MSRVTT text→video retrieval row (Table 10)."""
from harness.core.paper import HeadlineNumber
from harness.core.registry import PAPER_TABLES
from harness.core.task_result import PERCENT, RANK


@PAPER_TABLES.register_module(name='headline_video_retrieval')
def video_retrieval_headline() -> tuple[HeadlineNumber, ...]:
    """R@1/5/10 and median rank, MSRVTT 1k test, COCO-retrieval-fine-tuned BLIP, zero-shot."""
    recalls = (('t2v_R@1', 43.3), ('t2v_R@5', 65.6), ('t2v_R@10', 74.7))
    return tuple(HeadlineNumber('video_retrieval', 'msrvtt', 'test', metric, value, PERCENT)
                 for metric, value in recalls) + (
        HeadlineNumber('video_retrieval', 'msrvtt', 'test', 't2v_MdR', 2.0, RANK),)
