"""The BLIP paper's zero-shot video rows: MSRVTT text→video retrieval (Table 10), video QA
(Table 11)."""
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


VIDEO_QA_SOURCE = ('paper (BLIP Table 11: zero-shot video QA, top-1 test accuracy, the '
                   'VQA model on 16 frames\' concatenated features)')


@PAPER_TABLES.register_module(name='headline_video_qa')
def video_qa_headline() -> tuple[HeadlineNumber, ...]:
    """Zero-shot MSRVTT-QA and MSVD-QA test accuracy of BLIP's VQA model (Table 11)."""
    return tuple(HeadlineNumber('video_qa', dataset, 'test', 'accuracy', value, PERCENT,
                                source=VIDEO_QA_SOURCE)
                 for dataset, value in (('msrvtt_qa', 19.2), ('msvd_qa', 35.2)))
