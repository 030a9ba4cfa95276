"""Which frames of a clip BLIP looks at, and reading them with decord (named errors).

BLIP's zero-shot video evaluation (``data/video_dataset.py``, ``frm_sampling_strategy=
'uniform'``) asks numpy for ``arange(0, frame_count, frame_count / num_frames, dtype=int)``.
With an integer dtype numpy steps by the *truncated* first step, so the indices are
``i * (frame_count // num_frames)`` for ``i < num_frames``: evenly spaced from frame 0 and
biased to the start of the clip (13 frames, 8 asked: 0..7; 300 frames: 0, 37, ..., 259). A
clip with fewer frames than asked steps by 0: its first frame, repeated ``num_frames``
times. :func:`official_uniform_indices` is that rule; ``'centre'`` (the centres of equal
segments) is kept as an option, and repeats frames of short clips too.

Frames are decoded straight to ``image_size`` x ``image_size`` by decord (as BLIP, which
hands width and height to ``VideoReader``; the aspect ratio is not kept) on a bounded
number of threads (at the few sizes decord's scaler refuses, torch resizes instead), then
normalised as BLIP's video ``ImageNorm``: float, divided by 255 when the clip's maximum
exceeds 1, then CLIP mean/std per channel.
"""
import pathlib
from typing import Optional

import numpy as np
import torch

from harness.core.optional import require

from .errors import bad_sample
from .media import SKIP_HINT
from ..transforms import CLIP_MEAN, CLIP_STD

SAMPLING_RULES = ('uniform', 'centre')


def official_uniform_indices(frame_count: int, num_frames: int) -> np.ndarray:
    """BLIP's ``'uniform'`` indices: ``i * (frame_count // num_frames)``, ``i < num_frames``."""
    return np.arange(num_frames, dtype=np.int64) * (frame_count // num_frames)


def segment_centre_indices(frame_count: int, num_frames: int) -> np.ndarray:
    """The frames at the centres of ``num_frames`` equal segments of the clip."""
    return ((np.arange(num_frames) + 0.5) * frame_count / num_frames).astype(np.int64)


def frame_indices(frame_count: int, num_frames: int, sampling: str = 'uniform') -> np.ndarray:
    """The ``num_frames`` indices ``sampling`` (``'uniform'``: BLIP's, or ``'centre'``) picks."""
    if sampling == 'uniform':
        return official_uniform_indices(frame_count, num_frames)
    if sampling == 'centre':
        return segment_centre_indices(frame_count, num_frames)
    raise ValueError(f'sampling={sampling!r}: use one of {SAMPLING_RULES} '
                     "('uniform' is BLIP's rule).")


def repeats_frames(frame_count: int, num_frames: int) -> bool:
    """Whether a clip of ``frame_count`` frames yields some frame more than once."""
    return frame_count < num_frames


def normalise_frames(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` → float ``[T, 3, H, W]``, normalised as BLIP's ``ImageNorm``."""
    video = frames.permute(0, 3, 1, 2).float()
    if video.max() > 1:
        video = video / 255.0
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (video - mean) / std


def open_clip(path: pathlib.Path, ann_file, record_index: int, image_size: Optional[int] = None,
              num_threads: int = 1):
    """A decord ``VideoReader`` of ``path`` with at least one frame; BadSampleError otherwise.

    The error names the file, the annotation record and the fix for a missing or empty
    file, one decord cannot open (truncated, not a video) and one without a video stream.
    """
    def refuse(problem: str, fix: str, error: Optional[BaseException] = None):
        raised = bad_sample(ann_file, f'video file {path} {problem}', fix, record_index,
                            media=path)
        if error is None:
            raise raised
        raise raised from error

    if not path.is_file():
        refuse('does not exist.', 'check data_root/video_root, or drop the record from the '
               f'annotation file, {SKIP_HINT}')
    if path.stat().st_size == 0:
        refuse('is empty (0 bytes).', f'download or re-encode the clip again, {SKIP_HINT}')
    decord = require('decord', 'video frame sampling')
    size = dict(width=image_size, height=image_size) if image_size else {}
    try:
        reader = decord.VideoReader(str(path), num_threads=num_threads, **size)
    except decord.DECORDError as error:
        if 'video stream' in str(error):
            refuse('has no video stream (audio only?).', f'replace the clip, {SKIP_HINT}',
                   error)
        refuse(f'cannot be decoded ({str(error).splitlines()[0]}).',
               f're-encode or replace the clip, {SKIP_HINT}', error)
    except RuntimeError as error:
        refuse('cannot be opened: it is truncated or not a video file '
               f'({str(error).splitlines()[0]}).', f're-encode or replace the clip, {SKIP_HINT}',
               error)
    if len(reader) == 0:
        refuse('has no frames.', f're-encode or replace the clip, {SKIP_HINT}')
    return reader


def resize_frames(frames: torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` resized to ``image_size`` squared (bicubic, antialiased), uint8."""
    video = frames.permute(0, 3, 1, 2).float()
    video = torch.nn.functional.interpolate(video, size=(image_size, image_size),
                                            mode='bicubic', align_corners=False, antialias=True)
    return video.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def _sampled_frames(path: pathlib.Path, num_frames: int, image_size: Optional[int], ann_file,
                    record_index: int, sampling: str, num_threads: int) -> torch.Tensor:
    """uint8 ``[T, S, S, 3]`` frames; decord scales them, or (where its scaler fails) torch.

    decord's scaler refuses some small sizes (8, 12, 16, 24, 48 and 72 px here, "The size
    must exactly match"), so a failed decode is retried at the native size and resized by
    :func:`resize_frames`; a clip that fails both ways is a bad sample.
    """
    decord = require('decord', 'video frame sampling')
    reader = open_clip(path, ann_file, record_index, image_size, num_threads)
    indices = frame_indices(len(reader), num_frames, sampling)
    try:
        return torch.from_numpy(reader.get_batch(indices).asnumpy())
    except (RuntimeError, decord.DECORDError) as error:
        failure = error
    if image_size:
        native = open_clip(path, ann_file, record_index, None, num_threads)
        try:
            return resize_frames(torch.from_numpy(native.get_batch(indices).asnumpy()),
                                 image_size)
        except (RuntimeError, decord.DECORDError) as error:
            failure = error
    raise bad_sample(ann_file, f'video file {path} fails to decode frames {indices.tolist()} '
                     f'of {len(reader)} ({str(failure).splitlines()[0]}).',
                     f're-encode or replace the clip, {SKIP_HINT}', record_index,
                     media=path) from failure


def read_clip(path: pathlib.Path, num_frames: int, image_size: Optional[int], ann_file,
              record_index: int, sampling: str = 'uniform', num_threads: int = 1
              ) -> torch.Tensor:
    """The sampled, resized (None: native size) and normalised frames, float ``[T, 3, S, S]``.

    Raises BadSampleError (naming file, record and fix) for an unusable clip, including
    one whose frames fail to decode part-way (truncated mid-stream).
    """
    return normalise_frames(_sampled_frames(path, num_frames, image_size, ann_file,
                                            record_index, sampling, num_threads))


def count_frames(path: pathlib.Path, ann_file, record_index: int) -> int:
    """The number of frames of a clip, without decoding any (BadSampleError if unusable)."""
    return len(open_clip(path, ann_file, record_index))
