"""Open-ended video QA sets in the official MSRVTT-QA and MSVD-QA formats.

Both come from the release of Xu et al. 2017 (github.com/xudejing/video-question-answering):
``{train,val,test}_qa.json`` are JSON lists of ``{"video_id": int, "question": str,
"answer": str, "id": int}`` (MSRVTT-QA records also carry ``category_id``, unused here).

* MSRVTT-QA: ``video_id`` N is the MSRVTT clip ``video<N>.mp4`` (:class:`VideoQADataset`,
  ``video_pattern='video{video_id}.mp4'``; a string ``video_id`` is used as it is);
* MSVD-QA: ``video_id`` N is ``vid<N>`` of ``youtube_mapping.txt``, whose lines are
  ``<YouTube clip name> vid<N>``; the clip is ``YouTubeClips/<YouTube clip name>.avi``
  (:class:`MSVDQADataset`).

Frames are read as for retrieval (:mod:`tasks.datasets.video_frames`, BLIP's uniform rule; 16 per
clip for QA, as the BLIP paper). Rank inference needs the answer vocabulary: an
``answer_list_file`` (a JSON list, as BLIP's ``answer_list.json``) or the distinct answers
of a ``train_ann_file``, most frequent first; the training answers also give the
majority-answer baseline.
"""
import copy
import pathlib
from typing import Optional, Sequence

from harness.core.registry import DATASETS

from ..metrics.vqa_baselines import answers_by_frequency
from ..text import pre_question
from .video_frames import count_frames, read_clip
from .annotations import IDENTIFIER, TEXT, check_records, load_json, load_records, \
    read_annotation_text
from ..cache_keys import settings_hash
from .base import AnnotationDataset, PathLike
from .errors import bad_sample
from .roots import resolve_data_root
from .video import check_num_frames, check_sampling
from .vqa import load_answer_list

QA_FIELDS = {'video_id': IDENTIFIER, 'question': TEXT, 'answer': TEXT}


def load_training_answers(path: pathlib.Path) -> list[str]:
    """The answers of a QA training file: an MSRVTT-QA/MSVD-QA list of records (``answer``)
    or a VQAv2 annotation file (each record's ``multiple_choice_answer``)."""
    content = load_json(path)
    if isinstance(content, dict) and isinstance(content.get('annotations'), list):
        return [str(a['multiple_choice_answer']) for a in content['annotations']]
    records = load_records(path)
    check_records(path, records, required={'answer': TEXT}, kind='QA training')
    return [record['answer'] for record in records]


@DATASETS.register_module(name='MSRVTTQADataset')
@DATASETS.register_module()
class VideoQADataset(AnnotationDataset):
    """Open-ended questions about clips, in the official MSRVTT-QA format (see the module).

    Items: ``{'video': FloatTensor[T, 3, S, S], 'question': str (BLIP's pre_question),
    'question_id': the record's id (its index where it has none), 'answer': str}``.

    Args:
        data_root: folder the other paths are relative to (or a data source's name: 'toyworld').
        ann_file: the JSON list (or jsonl) of questions, e.g. MSRVTT-QA ``test_qa.json``.
        video_root: clip folder (from data_root).
        video_pattern: a clip's file name, from the record's ``video_id``.
        num_frames: frames per clip (BLIP's zero-shot video QA: 16).
        image_size: frame side S (None: the native size).
        max_question_words: question length cap (BLIP's ``pre_question``: 50).
        sampling: ``'uniform'`` (BLIP's rule) or ``'centre'`` (segment centres).
        decode_threads: decord threads per DataLoader worker (0: decord's own choice).
        answer_list_file: candidate answers of rank inference (a JSON list of strings).
        train_ann_file: the set's training questions (or a VQAv2 annotation file): their
            answers are the candidates when no ``answer_list_file`` is given, and give the
            majority-answer baseline.
        on_bad_sample: 'raise' or 'skip' (see :mod:`tasks.datasets.base`).
    """

    item_unit = 'questions'

    def __init__(self, data_root: PathLike, ann_file: PathLike, video_root: PathLike = 'videos',
                 video_pattern: str = 'video{video_id}.mp4', num_frames: int = 16,
                 image_size: Optional[int] = 384, max_question_words: int = 50,
                 sampling: str = 'uniform', decode_threads: int = 1,
                 answer_list_file: Optional[PathLike] = None,
                 train_ann_file: Optional[PathLike] = None, on_bad_sample: str = 'raise'):
        super().__init__(data_root, on_bad_sample)
        self.ann_file = self.resolve(ann_file)
        self.video_root = self.resolve(video_root)
        self.video_pattern = video_pattern
        self.num_frames = check_num_frames(num_frames, type(self).__name__)
        self.sampling = check_sampling(sampling, type(self).__name__)
        self.image_size = image_size
        self.decode_threads = decode_threads
        self.max_question_words = max_question_words
        self.training_answers = (load_training_answers(self.resolve(train_ann_file))
                                 if train_ann_file else None)
        self.answer_list = (load_answer_list(self.resolve(answer_list_file))
                            if answer_list_file else
                            answers_by_frequency(self.training_answers)
                            if self.training_answers else None)
        records = load_records(self.ann_file)
        check_records(self.ann_file, records, required=QA_FIELDS, optional={'id': IDENTIFIER},
                      kind='video QA (MSRVTT-QA format)')
        self.records = list(enumerate(records))  # (record index, record)
        self.clip_files = [self.video_root / self.clip_file_name(record, index)
                           for index, record in self.records]
        self._check_unique_ids()
        self._start_guard()

    def clip_file_name(self, record: dict, record_index: int) -> str:
        """The file name of a record's clip under ``video_root``."""
        return self.video_pattern.format(video_id=record['video_id'])

    def _check_unique_ids(self) -> None:
        seen = {}
        for position, (record_index, _) in enumerate(self.records):
            question_id = self.question_id(position)
            if question_id in seen:
                raise bad_sample(self.ann_file, f'question id {question_id!r} repeats record '
                                 f'{seen[question_id]}.', 'give every question its own "id" '
                                 '(or drop the field: record indices are used).', record_index)
            seen[question_id] = record_index

    def __len__(self) -> int:
        return len(self.records)

    def question_id(self, index: int):
        """The id of question ``index``: its record's ``id``, else the record index."""
        record_index, record = self.records[index]
        return record.get('id', record_index)

    def media_path(self, index: int) -> pathlib.Path:
        """The video file of question ``index``."""
        return self.clip_files[index]

    def load_item(self, index: int) -> dict:
        """Frames, cleaned question, id and answer of question ``index``."""
        record_index, record = self.records[index]
        video = read_clip(self.media_path(index), self.num_frames, self.image_size,
                          self.ann_file, record_index, self.sampling, self.decode_threads)
        return {'video': video,
                'question': pre_question(record['question'], self.max_question_words),
                'question_id': self.question_id(index), 'answer': record['answer']}

    def frame_count(self, index: int) -> int:
        """The number of frames of question ``index``'s clip (opens it, decodes none)."""
        return count_frames(self.media_path(index), self.ann_file, self.records[index][0])

    def gold_answers(self) -> list[dict]:
        """``[{'question_id', 'answer'}]`` of every question, in order."""
        return [{'question_id': self.question_id(i), 'answer': record['answer']}
                for i, (_, record) in enumerate(self.records)]

    def num_videos(self) -> int:
        """How many distinct clips the questions ask about."""
        return len(set(self.clip_files))

    def select_questions(self, keep: Sequence[int]) -> 'VideoQADataset':
        """A copy holding only the questions ``keep`` (in that order)."""
        subset = copy.copy(self)
        subset.records = [self.records[i] for i in keep]
        subset.clip_files = [self.clip_files[i] for i in keep]
        subset._start_guard()
        return subset

    def limit(self, count: int) -> 'VideoQADataset':
        """The first ``count`` questions (smoke evaluations, ``run.py --limit``)."""
        return self.select_questions(range(min(count, len(self))))

    def inputs_identity(self) -> str:
        """:meth:`AnnotationDataset.inputs_identity` plus the kept questions (two selections
        of the questions on one clip share their media files)."""
        return settings_hash(dict(files=super().inputs_identity(),
                                  questions=[record['question'] for _, record in self.records]))


def load_youtube_mapping(path: pathlib.Path) -> dict[str, str]:
    """MSVD's ``youtube_mapping.txt``: ``{'vid<N>': '<YouTube clip name>'}``."""
    mapping = {}
    for line_number, line in enumerate(read_annotation_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].startswith('vid'):
            raise bad_sample(path, f'line {line_number} is {line!r:.80}, not '
                             '"<YouTube clip name> vid<N>".', "use MSVD-QA's "
                             'youtube_mapping.txt (one clip per line).')
        mapping[fields[1]] = fields[0]
    return mapping


@DATASETS.register_module()
class MSVDQADataset(VideoQADataset):
    """MSVD-QA questions (see the module): ``video_id`` N → ``vid<N>`` → its YouTube clip.

    Args:
        mapping_file: ``youtube_mapping.txt`` (from data_root).
        video_root: the MSVD clip folder (``YouTubeClips``).
        video_ext: the clips' extension (MSVD: ``.avi``).
        The others are :class:`VideoQADataset`'s.
    """

    def __init__(self, data_root: PathLike, ann_file: PathLike,
                 mapping_file: PathLike = 'youtube_mapping.txt',
                 video_root: PathLike = 'YouTubeClips', video_ext: str = '.avi', **kwargs):
        self.video_ext = video_ext
        self.mapping_file = resolve_data_root(data_root) / pathlib.Path(mapping_file).expanduser()
        self.youtube_names = load_youtube_mapping(self.mapping_file)
        super().__init__(data_root, ann_file, video_root=video_root, **kwargs)

    def clip_file_name(self, record: dict, record_index: int) -> str:
        """``<YouTube clip name><video_ext>`` of the record's ``vid<video_id>``."""
        key = f'vid{record["video_id"]}'
        if key not in self.youtube_names:
            raise bad_sample(self.ann_file, f'video_id {record["video_id"]!r} ({key}) is not '
                             f'in the mapping file {self.mapping_file}.', 'pass the '
                             "youtube_mapping.txt of MSVD-QA's release as mapping_file.",
                             record_index)
        return self.youtube_names[key] + self.video_ext
