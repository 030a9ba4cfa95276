"""CapFilt (captioning and filtering) as task pieces for the harness's CapFilt stages.

Registered: ``WebImageDataset`` and ``WebShardImageDataset`` (``DATASETS``), the
``capfilt_caption`` and ``capfilt_filter`` task functions (``TASKS``; sharded and
resumable), ``replicated_corpus`` (``FUNCTIONS``), ``CorpusMixSampler``
(``DATA_SAMPLERS``: epoch size and human-pair share held fixed for the diagnostic rows) and
the stages that run them and write the corpus (``STAGES``: :mod:`.stages`).
"""
from .captioning import caption_web_images
from .corpus import bootstrapped_corpus, replicated_corpus
from .filtering import filter_web_corpus
from . import paper_tables  # noqa: F401  (registers PAPER_TABLES)
from .report import capfilt_report, rejection_quality
from .sampler import CorpusMixSampler
from .shards import ShardStore, run_sharded
from .stages import CaptionCorpusStage, FilterCorpusStage, ReplicateCorpusStage
from .shard_images import WebShardImageDataset
from .web_images import WebImageDataset

__all__ = ['CaptionCorpusStage', 'CorpusMixSampler', 'FilterCorpusStage',
           'ReplicateCorpusStage', 'ShardStore', 'WebImageDataset', 'WebShardImageDataset',
           'bootstrapped_corpus',
           'caption_web_images', 'capfilt_report', 'filter_web_corpus', 'rejection_quality',
           'replicated_corpus', 'run_sharded']
