"""The common base of all readers: where files are, and what to do with a bad sample.

``on_bad_sample='raise'`` (default) lets a :class:`BadSampleError` escape. ``'skip'`` returns
the next good sample instead (index + 1, + 2, ... wrapping around, so the outcome is
deterministic), logs a warning naming the bad file and marks it in a shared-memory flag
array, so :meth:`AnnotationDataset.bad_sample_report` counts bad samples met in every
DataLoader worker process. Evaluation references (retrieval captions) are read when the
dataset is built: in skip mode one that cleans to nothing is dropped and logged (a record
left without references is dropped whole), and ``dropped_references`` counts them.
"""
import dataclasses
import logging
import os
import pathlib
from typing import Optional, Union

import torch
from mmengine.logging import print_log
from torch.utils.data import Dataset

from ..cache_keys import settings_hash
from .annotations import cleaned_caption
from .errors import BadSampleError, bad_sample
from .roots import resolve_data_root

BAD_SAMPLE_POLICIES = ('raise', 'skip')
PLAIN_VALUES = (str, int, float, bool, type(None))  # settings an inputs identity covers
REPORTED_FILES = 5
PathLike = Union[str, os.PathLike]


@dataclasses.dataclass(frozen=True)
class BadSampleReport:
    """How many samples were skipped as bad, and the files of the first few."""

    count: int
    total: int
    first_files: list[str]


class AnnotationDataset(Dataset):
    """Base of the readers: a data root, annotation files and a bad-sample policy.

    Subclasses load and check their annotations, then call :meth:`_start_guard`, and
    implement ``__len__``, :meth:`load_item` and :meth:`media_path`.
    """

    def __init__(self, data_root: PathLike, on_bad_sample: str = 'raise'):
        if on_bad_sample not in BAD_SAMPLE_POLICIES:
            raise ValueError(f"on_bad_sample={on_bad_sample!r}: use one of "
                             f"{BAD_SAMPLE_POLICIES}.")
        self.data_root = resolve_data_root(data_root)
        self.on_bad_sample = on_bad_sample
        self._bad_flags = None
        self.dropped_references = 0

    def resolve(self, relative: PathLike) -> pathlib.Path:
        """A path relative to the data root (absolute paths are kept)."""
        return self.data_root / pathlib.Path(relative).expanduser()

    def _start_guard(self) -> None:
        """Allocate the shared bad-sample flags; call once the length is known."""
        if self.on_bad_sample == 'skip':
            self._bad_flags = torch.zeros(len(self), dtype=torch.bool).share_memory_()

    def load_item(self, index: int) -> dict:
        """The item at ``index``; raise BadSampleError when its media is unusable."""
        raise NotImplementedError

    def media_path(self, index: int) -> pathlib.Path:
        """The image or video file of item ``index`` (for reports)."""
        raise NotImplementedError

    def annotation_files(self) -> list[pathlib.Path]:
        """The annotation files the items were read from (``ann_files``, else ``ann_file``)."""
        files = getattr(self, 'ann_files', None) or [getattr(self, 'ann_file', None)]
        return [pathlib.Path(f) for f in files if f is not None]

    def inputs_identity(self) -> str:
        """A hash of what decides the model inputs of the items, for caches of their results.

        Covers the class, each item's media file, the annotation files (path, size and
        modification time, so an edited file counts as new), the image transform and every
        public setting held as a plain value (image size, word limits, frames per clip,
        sampling rule, where images are decoded...). A reader whose items depend on more
        (which records were kept) extends it.
        """
        annotations = [(str(path), *_size_and_mtime(path)) for path in self.annotation_files()]
        options = {name: value for name, value in sorted(vars(self).items())
                   if not name.startswith('_') and isinstance(value, PLAIN_VALUES)}
        settings = dict(reader=type(self).__name__, annotations=annotations, options=options,
                        media=[str(self.media_path(i)) for i in range(len(self))],
                        transform=repr(getattr(self, 'transform', None)))
        return settings_hash(settings)

    def __getitem__(self, index: int) -> dict:
        size = len(self)
        if not -size <= index < size:
            raise IndexError(f'index {index} out of range for {size} items')
        index %= size
        if self.on_bad_sample == 'raise':
            return self.load_item(index)
        for step in range(size):
            candidate = (index + step) % size
            if self._bad_flags[candidate]:
                continue
            try:
                return self.load_item(candidate)
            except BadSampleError as error:
                self._bad_flags[candidate] = True
                self._warn_skipped(f'bad sample {candidate}', error)
        raise bad_sample(self.media_path(index).parent, f'all {size} samples of '
                         f'{type(self).__name__} are bad.', 'check data_root and the media '
                         'folders.')

    def _warn_skipped(self, what: str, error: BadSampleError) -> None:
        print_log(f'{type(self).__name__}: skipping {what} (on_bad_sample=skip): {error}',
                  logger='current', level=logging.WARNING)

    def _reference(self, caption: str, max_words: int, path: pathlib.Path,
                   record_index: int) -> Optional[str]:
        """A cleaned evaluation caption, or None (skip mode) when nothing is left of it.

        Skipped references are logged and counted in ``dropped_references``.
        """
        try:
            return cleaned_caption(caption, max_words, path, record_index)
        except BadSampleError as error:
            if self.on_bad_sample == 'raise':
                raise
            self.dropped_references += 1
            self._warn_skipped('an empty reference caption', error)
            return None

    def bad_sample_report(self) -> BadSampleReport:
        """Bad samples met so far (in every worker): count and first few file names."""
        if self._bad_flags is None:
            return BadSampleReport(0, len(self), [])
        bad = torch.nonzero(self._bad_flags).flatten().tolist()
        return BadSampleReport(len(bad), len(self),
                               [str(self.media_path(i)) for i in bad[:REPORTED_FILES]])


def _size_and_mtime(path: pathlib.Path) -> tuple[int, int]:
    """A file's size and modification time in ns ((-1, -1) when it cannot be read)."""
    try:
        stat = path.stat()
    except OSError:
        return -1, -1
    return stat.st_size, stat.st_mtime_ns


class ImageListDataset(AnnotationDataset):
    """An annotation dataset whose items are the distinct images listed in ``self.images``.

    ``per_image_fields`` names the lists that hold one entry per image, which
    :meth:`limit` shortens together.
    """

    per_image_fields = ('images',)

    def limit(self, count: int) -> 'ImageListDataset':
        """Keep only the first ``count`` images (smoke evaluations, ``run.py --limit``)."""
        for name in self.per_image_fields:
            setattr(self, name, getattr(self, name)[:count])
        self._start_guard()
        return self

    def __len__(self) -> int:
        return len(self.images)

    def media_path(self, index: int) -> pathlib.Path:
        """The file of image ``index``."""
        return self.image_root / self.images[index]
