"""The error every reader raises for unusable input, naming file, record and fix."""
from typing import Optional


class BadSampleError(ValueError):
    """An annotation file, record, image or video that cannot be used.

    The message says which file, which record (0-based index), what is wrong and how to fix
    it; ``file``, ``record_index`` and ``media`` carry the same facts for programs. It takes
    the message as its only positional argument so it survives DataLoader worker re-raising.
    """

    def __init__(self, message: str, *, file: Optional[str] = None,
                 record_index: Optional[int] = None, media: Optional[str] = None):
        super().__init__(message)
        self.file = file
        self.record_index = record_index
        self.media = media


def bad_sample(file, problem: str, fix: str, record_index: Optional[int] = None,
               media=None) -> BadSampleError:
    """Build a :class:`BadSampleError` with the standard message layout."""
    where = str(file) if record_index is None else f'{file}, record {record_index}'
    return BadSampleError(f'{where}: {problem} Fix: {fix}', file=str(file),
                          record_index=record_index,
                          media=None if media is None else str(media))
