"""Dataset readers for the real benchmark formats (and ToyWorld, written in them).

Importing this package registers every reader in ``harness.core.registry.DATASETS``,
``vqa_train_collate`` in ``FUNCTIONS`` and ``ShardProgressHook`` in ``HOOKS``.
"""
from .base import AnnotationDataset, BadSampleReport
from .caption import CaptionEvalDataset, image_id_from_file_name
from .errors import BadSampleError
from .gqa import GQADataset
from .image_text import ImageTextPairDataset
from .retrieval import RetrievalEvalDataset
from .roots import resolve_data_root
from .shard_progress import ShardProgressHook
from .vg_qa import VisualGenomeQADataset
from .video import VideoRetrievalDataset
from .video_qa import MSVDQADataset, VideoQADataset
from .vqa import VQADataset, answer_weights, load_answer_list, vqa_train_collate
from .vqav2 import VQAv2Dataset
from .web_shards import WebShardDataset

__all__ = [
    'AnnotationDataset', 'BadSampleError', 'BadSampleReport', 'CaptionEvalDataset',
    'GQADataset', 'ImageTextPairDataset', 'MSVDQADataset', 'RetrievalEvalDataset',
    'ShardProgressHook', 'VQADataset', 'VQAv2Dataset', 'VideoQADataset',
    'VideoRetrievalDataset', 'VisualGenomeQADataset', 'WebShardDataset', 'answer_weights',
    'image_id_from_file_name', 'load_answer_list', 'resolve_data_root', 'vqa_train_collate'
]
