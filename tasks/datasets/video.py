"""Zero-shot video sets: MSRVTT retrieval (``msrvtt_test.jsonl``) and video QA."""
import pathlib

from harness.core.registry import DATASETS

from ..text import pre_question
from ..transforms import frames_to_tensor
from .annotations import TEXT, check_records, load_records
from .base import AnnotationDataset, PathLike
from .media import read_video_frames


def check_num_frames(num_frames: int, reader: str) -> int:
    """``num_frames`` if it is a positive integer; ValueError naming the parameter otherwise."""
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f'{reader}: num_frames={num_frames!r}; it is the number of frames '
                         'sampled per clip and must be an integer >= 1 (BLIP: 8).')
    return num_frames


def clip_file(video_root: pathlib.Path, name: str) -> pathlib.Path:
    """``<video_root>/<name>.mp4`` (``name`` may already end in '.mp4')."""
    return video_root / (name if name.endswith('.mp4') else f'{name}.mp4')


@DATASETS.register_module()
class VideoRetrievalDataset(AnnotationDataset):
    """Clips of a text-video retrieval test set, captions flattened into ``texts``.

    Lines are ``{"clip_name": "video7010", "caption": str}``; lines sharing a clip name give
    it several captions. Items are clips: ``{'video': FloatTensor[T, 3, S, S],
    'video_index': int}`` with T = ``num_frames`` frames sampled uniformly (segment
    centres). Attributes: ``texts``, ``txt2img`` (clip of each text), ``img2txt`` (texts of
    each clip). A caption that cleans to nothing is a bad sample (see
    :meth:`AnnotationDataset._reference`).

    Args:
        data_root: folder the other paths are relative to (or a data source's name: 'toyworld').
        ann_file: the jsonl annotation file.
        video_root: clip folder (from data_root).
        num_frames: frames per clip (BLIP: 8).
        image_size: frame side S.
        max_words: caption length cap.
        on_bad_sample: 'raise' or 'skip' (see :mod:`tasks.datasets.base`).
    """

    def __init__(self, data_root: PathLike, ann_file: PathLike, video_root: PathLike = 'videos',
                 num_frames: int = 8, image_size: int = 384, max_words: int = 40,
                 on_bad_sample: str = 'raise'):
        super().__init__(data_root, on_bad_sample)
        self.ann_file = self.resolve(ann_file)
        self.video_root = self.resolve(video_root)
        self.num_frames = check_num_frames(num_frames, type(self).__name__)
        self.image_size = image_size
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
        frames = read_video_frames(self.media_path(index), self.num_frames, self.ann_file,
                                   self.first_records[index])
        return {'video': frames_to_tensor(frames, self.image_size), 'video_index': index}


@DATASETS.register_module()
class VideoQADataset(AnnotationDataset):
    """Open-ended questions about clips (MSRVTT-QA style).

    Records are ``{"video": clip name, "question": str, "answer": str}``. Item:
    ``{'video': FloatTensor[T, 3, S, S], 'question': str, 'question_id': int (record
    index), 'answer': str}``.

    Args:
        data_root: folder the other paths are relative to (or a data source's name: 'toyworld').
        ann_file: the JSON list (or jsonl) of questions.
        video_root: clip folder (from data_root).
        num_frames: frames per clip.
        image_size: frame side S.
        max_question_words: question length cap.
        on_bad_sample: 'raise' or 'skip' (see :mod:`tasks.datasets.base`).
    """

    def __init__(self, data_root: PathLike, ann_file: PathLike, video_root: PathLike = 'videos',
                 num_frames: int = 8, image_size: int = 384, max_question_words: int = 50,
                 on_bad_sample: str = 'raise'):
        super().__init__(data_root, on_bad_sample)
        self.ann_file = self.resolve(ann_file)
        self.video_root = self.resolve(video_root)
        self.num_frames = check_num_frames(num_frames, type(self).__name__)
        self.image_size = image_size
        self.max_question_words = max_question_words
        self._records = load_records(self.ann_file)
        check_records(self.ann_file, self._records,
                      required={'video': TEXT, 'question': TEXT, 'answer': TEXT},
                      kind='video QA')
        self._start_guard()

    def __len__(self) -> int:
        return len(self._records)

    def media_path(self, index: int) -> pathlib.Path:
        """The video file of question ``index``."""
        return clip_file(self.video_root, self._records[index]['video'])

    def load_item(self, index: int) -> dict:
        """Frames, cleaned question, id and answer of question ``index``."""
        record = self._records[index]
        frames = read_video_frames(self.media_path(index), self.num_frames, self.ann_file, index)
        return {'video': frames_to_tensor(frames, self.image_size),
                'question': pre_question(record['question'], self.max_question_words),
                'question_id': index, 'answer': record['answer']}
