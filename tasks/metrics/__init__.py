"""Metrics of the task plugins: COCO captions, VQAv2/GQA accuracy and retrieval recall.

Importing this package registers the mmengine metric wrappers in ``harness.core.registry.METRICS``.
"""
from .caption import (CAPTION_METRIC_FAMILIES, CaptionScores, coco_caption_metrics,
                      load_coco_references, score_captions, spice_unavailable_reason)
from .registered_metrics import CocoCaptionMetric, GQAAccuracyMetric, VQAAccuracyMetric
from .retrieval import best_ranks, retrieval_metrics
from .vqa import gqa_accuracy, normalize_gqa_answer, vqa_accuracy, vqa_question_accuracy
from .vqa_answer_processing import (normalize_predicted_answer, process_digit_article,
                                   process_punctuation)
from .vqa_baselines import (MajorityAnswers, gqa_majority_baseline, majority_answers,
                            vqa_majority_baseline)
from .vqa_results import vqa_result_records, write_vqa_results

__all__ = [
    'CAPTION_METRIC_FAMILIES', 'CaptionScores', 'coco_caption_metrics', 'load_coco_references',
    'score_captions', 'spice_unavailable_reason', 'CocoCaptionMetric', 'GQAAccuracyMetric',
    'VQAAccuracyMetric', 'best_ranks', 'retrieval_metrics', 'gqa_accuracy',
    'normalize_gqa_answer', 'vqa_accuracy', 'vqa_question_accuracy',
    'normalize_predicted_answer', 'process_digit_article', 'process_punctuation',
    'MajorityAnswers', 'gqa_majority_baseline', 'majority_answers', 'vqa_majority_baseline',
    'vqa_result_records', 'write_vqa_results',
]
