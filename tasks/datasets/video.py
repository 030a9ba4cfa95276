"""Zero-shot text-video retrieval sets: MSRVTT (``msrvtt_test.jsonl``); QA in :mod:`.video_qa`.

Frames are sampled and decoded by :mod:`tasks.datasets.video_frames` (BLIP's rule by default), in
the DataLoader workers that call ``__getitem__``.
"""
import copy
import pathlib
from typing import Sequence

from harness.core.registry import DATASETS

from .video_frames import SAMPLING_RULES, count_frames, read_clip
from .annotations import TEXT, check_records, load_records
from .base import AnnotationDataset, PathLike


def check_num_frames(num_frames: int, reader: str) -> int:
    """``num_frames`` if it is a positive integer; ValueError naming the parameter otherwise."""
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f'{reader}: num_frames={num_frames!r}; it is the number of frames '
                         'sampled per clip and must be an integer >= 1 (BLIP: 8).')
    return num_frames


def check_sampling(sampling: str, reader: str) -> str:
    """``sampling`` if it names a frame sampling rule; ValueError naming the choices otherwise."""
    if sampling not in SAMPLING_RULES:
        raise ValueError(f'{reader}: sampling={sampling!r}; use one of {SAMPLING_RULES} '
                         "('uniform' is BLIP's rule).")
    return sampling


def clip_file(video_root: pathlib.Path, name: str) -> pathlib.Path:
    """``<video_root>/<name>.mp4`` (``name`` may already end in '.mp4')."""
    return video_root / (name if name.endswith('.mp4') else f'{name}.mp4')


@DATASETS.register_module()
class VideoRetrievalDataset(AnnotationDataset):
    """Clips of a text-video retrieval test set, captions flattened into ``texts``.

    Lines are ``{"clip_name": "video7010", "caption": str}`` (BLIP's ``msrvtt_test.jsonl``:
    one caption per clip, captions cleaned by ``pre_caption(caption, 40)``); lines sharing a
    clip name give it several captions. Items are clips: ``{'video': FloatTensor[T, 3, S,
    S], 'video_index': int}`` with T = ``num_frames`` frames picked by ``sampling``
    (:mod:`tasks.datasets.video_frames`). Attributes: ``texts``, ``txt2img`` (clip of each text),
    ``img2txt`` (texts of each clip). A caption that cleans to nothing is a bad sample (see
    :meth:`AnnotationDataset._reference`).

    Args:
        data_root: folder the other paths are relative to (or a data source's name: 'toyworld').
        ann_file: the jsonl (or JSON list) annotation file.
        video_root: clip folder (from data_root).
        num_frames: frames per clip (BLIP retrieval: 8).
        image_size: frame side S (frames are resized to S x S, as BLIP).
        max_words: caption length cap (BLIP: 40).
        sampling: ``'uniform'`` (BLIP's rule) or ``'centre'`` (segment centres).
        decode_threads: decord threads per DataLoader worker (0: decord's own choice).
        on_bad_sample: 'raise' or 'skip' (see :mod:`tasks.datasets.base`).
    """

    item_unit = 'videos'

    def __init__(self, data_root: PathLike, ann_file: PathLike, video_root: PathLike = 'videos',
                 num_frames: int = 8, image_size: int = 384, max_words: int = 40,
                 sampling: str = 'uniform', decode_threads: int = 1,
                 on_bad_sample: str = 'raise'):
        super().__init__(data_root, on_bad_sample)
        self.ann_file = self.resolve(ann_file)
        self.video_root = self.resolve(video_root)
        self.num_frames = check_num_frames(num_frames, type(self).__name__)
        self.sampling = check_sampling(sampling, type(self).__name__)
        self.image_size = image_size
        self.decode_threads = decode_threads
        records = load_records(self.ann_file)
        check_records(self.ann_file, records, required={'clip_name': TEXT, 'caption': TEXT},
                      kind='video retrieval')
        clip_indices: dict[str, int] = {}
        self.clips, self.first_records = [], []
        self.texts, self.txt2img, self.img2txt = [], [], []
        for record_index, record in enumerate(records):
            text = self._reference(record['caption'], max_words, self.ann_file, record_index)
            if text is None:
                continue
            name = record['clip_name']
            if name not in clip_indices:
                clip_indices[name] = len(self.clips)
                self.clips.append(name)
                self.first_records.append(record_index)
                self.img2txt.append([])
            self.img2txt[clip_indices[name]].append(len(self.texts))
            self.txt2img.append(clip_indices[name])
            self.texts.append(text)
        self._start_guard()

    def __len__(self) -> int:
        return len(self.clips)

    def media_path(self, index: int) -> pathlib.Path:
        """The video file of clip ``index``."""
        return clip_file(self.video_root, self.clips[index])

    def load_item(self, index: int) -> dict:
        """The sampled, normalised frames of clip ``index``."""
        video = read_clip(self.media_path(index), self.num_frames, self.image_size,
                          self.ann_file, self.first_records[index], self.sampling,
                          self.decode_threads)
        return {'video': video, 'video_index': index}

    def frame_count(self, index: int) -> int:
        """The number of frames of clip ``index`` (opens it, decodes none)."""
        return count_frames(self.media_path(index), self.ann_file, self.first_records[index])

    def select_clips(self, keep: Sequence[int]) -> 'VideoRetrievalDataset':
        """A copy holding only the clips ``keep`` (in that order) and their texts."""
        subset = copy.copy(self)
        subset.clips = [self.clips[i] for i in keep]
        subset.first_records = [self.first_records[i] for i in keep]
        subset.texts, subset.txt2img, subset.img2txt = [], [], []
        for clip, old in enumerate(keep):
            texts = self.img2txt[old]
            subset.img2txt.append(list(range(len(subset.texts), len(subset.texts) + len(texts))))
            subset.texts += [self.texts[t] for t in texts]
            subset.txt2img += [clip] * len(texts)
        subset._start_guard()
        return subset

    def limit(self, count: int) -> 'VideoRetrievalDataset':
        """The first ``count`` clips and their texts (smoke evaluations, ``run.py --limit``)."""
        return self.select_clips(range(min(count, len(self))))
