"""Dataset readers for the real benchmark formats (and ToyWorld, written in them).

Importing this package registers every reader in ``harness.core.registry.DATASETS`` and
``vqa_train_collate`` in ``FUNCTIONS``.
"""
from .base import AnnotationDataset, BadSampleReport
from .caption import CaptionEvalDataset, image_id_from_file_name
from .errors import BadSampleError
from .gqa import GQADataset
from .image_text import ImageTextPairDataset
from .retrieval import RetrievalEvalDataset
from .roots import resolve_data_root
from .video import VideoQADataset, VideoRetrievalDataset
from .vqa import VQADataset, answer_weights, vqa_train_collate

__all__ = [
    'AnnotationDataset', 'BadSampleError', 'BadSampleReport', 'CaptionEvalDataset',
    'GQADataset', 'ImageTextPairDataset', 'RetrievalEvalDataset', 'VQADataset',
    'VideoQADataset', 'VideoRetrievalDataset', 'answer_weights', 'image_id_from_file_name',
    'resolve_data_root', 'vqa_train_collate'
]
