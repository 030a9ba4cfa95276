"""A survey of a video set's clips before evaluation: frame counts, short and bad clips.

Every clip is opened (no frame is decoded) in DataLoader workers to learn its frame count.
Clips with fewer frames than asked repeat frames (:mod:`.frames`), and the survey counts
them. With ``on_bad_sample='raise'`` an unusable clip (missing, empty, not a video, no
video stream, no frames) stops the evaluation with a named error; with ``'skip'`` it is
logged, counted and left out of the evaluation with its captions. The survey is stored
under the work dir, so an evaluation repeated on the same clips opens none of them.
"""
import dataclasses
import json
import logging
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Union

from mmengine.logging import print_log
from torch.utils.data import DataLoader, Dataset

from harness.core.files import atomic_write_json

from ..datasets.errors import BadSampleError
from ..datasets.video_frames import repeats_frames

SURVEY_DIRNAME = 'video_clips'
BAD = -1  # the frame count recorded for an unusable clip


@dataclasses.dataclass(frozen=True)
class ClipSurvey:
    """Frame counts of every clip of a set (``BAD`` for an unusable one) and the bad files."""

    frame_counts: List[int]
    bad_files: List[str]

    @property
    def good(self) -> List[int]:
        """Indices of the usable clips."""
        return [i for i, count in enumerate(self.frame_counts) if count != BAD]

    def short_clips(self, num_frames: int) -> int:
        """How many usable clips have fewer than ``num_frames`` frames (frames repeat)."""
        return sum(count != BAD and repeats_frames(count, num_frames)
                   for count in self.frame_counts)


class _FrameCounts(Dataset):
    """``(index, frame count or BAD, message)`` of every clip, for DataLoader workers."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        try:
            return index, self.dataset.frame_count(index), ''
        except BadSampleError as error:
            if self.dataset.on_bad_sample == 'raise':
                raise
            return index, BAD, str(error)


def _count_frames(dataset, num_workers: int) -> ClipSurvey:
    """Open every clip of ``dataset`` in ``num_workers`` workers (0: in this process)."""
    loader = DataLoader(_FrameCounts(dataset), batch_size=None, num_workers=num_workers)
    counts, bad_files = [BAD] * len(dataset), []
    for index, count, message in loader:
        counts[index] = count
        if count == BAD:
            bad_files.append(str(dataset.media_path(index)))
            print_log(f'{type(dataset).__name__}: skipping clip {index} '
                      f'(on_bad_sample=skip): {message}', logger='current',
                      level=logging.WARNING)
    return ClipSurvey(counts, bad_files)


def survey_clips(dataset, work_dir: Optional[Union[str, Path]] = None,
                 num_workers: int = 0) -> ClipSurvey:
    """The clip survey of ``dataset``, read from ``work_dir`` if an earlier call stored it.

    ``dataset`` has ``frame_count(index)``, ``media_path(index)``, ``on_bad_sample`` and
    ``inputs_identity()`` (the key of the stored survey).
    """
    path = None if work_dir is None else \
        Path(work_dir) / SURVEY_DIRNAME / f'{dataset.inputs_identity()}.json'
    if path is not None and path.is_file():
        return ClipSurvey(**json.loads(path.read_text()))
    survey = _count_frames(dataset, num_workers)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, dataclasses.asdict(survey))
    return survey


def without_bad_clips(dataset, survey: ClipSurvey, select: Callable[[Sequence[int]], object]):
    """The dataset itself, or (skip mode, some clips bad) ``select(survey.good)``.

    The copy raises on a clip that fails to decode although the survey could open it: a
    substitute clip would give the wrong clip's features.
    """
    if not survey.bad_files:
        return dataset
    subset = select(survey.good)
    subset.on_bad_sample = 'raise'
    return subset
