"""Reading images (PIL) and uniformly sampled video frames (decord), with clear errors."""
import pathlib

import numpy as np
from PIL import Image

from harness.core.optional import require

from .errors import bad_sample


def read_image(path: pathlib.Path, ann_file, record_index: int) -> Image.Image:
    """Open and fully decode an image as RGB; raise BadSampleError if it is missing or bad."""
    if not path.is_file():
        raise bad_sample(ann_file, f'image file {path} does not exist.',
                         'check data_root/image_root, or drop the record from the annotation '
                         "file (or pass on_bad_sample='skip').", record_index, media=path)
    try:
        with Image.open(path) as image:
            return image.convert('RGB')
    except (OSError, SyntaxError, ValueError) as error:
        raise bad_sample(ann_file, f'image file {path} is corrupt or not an image ({error}).',
                         "replace the file, or pass on_bad_sample='skip'.", record_index,
                         media=path) from error


def uniform_frame_indices(frame_count: int, num_frames: int) -> np.ndarray:
    """``num_frames`` indices at the centres of equal segments of a ``frame_count`` clip."""
    return ((np.arange(num_frames) + 0.5) * frame_count / num_frames).astype(np.int64)


def read_video_frames(path: pathlib.Path, num_frames: int, ann_file,
                      record_index: int) -> np.ndarray:
    """Decode ``num_frames`` uniformly spaced frames, uint8 array of shape (T, H, W, 3)."""
    if not path.is_file():
        raise bad_sample(ann_file, f'video file {path} does not exist.',
                         'check data_root/video_root, or drop the record (or pass '
                         "on_bad_sample='skip').", record_index, media=path)
    decord = require('decord', 'video frame sampling')
    try:
        reader = decord.VideoReader(str(path), num_threads=1)
        frame_count = len(reader)
        if frame_count == 0:
            raise ValueError('the clip has no frames')
        frames = reader.get_batch(uniform_frame_indices(frame_count, num_frames)).asnumpy()
    except (RuntimeError, ValueError, decord.DECORDError) as error:
        raise bad_sample(ann_file, f'video file {path} is unreadable or truncated '
                         f'({str(error).splitlines()[0]}).', "re-encode or replace the clip, "
                         "or pass on_bad_sample='skip'.", record_index, media=path) from error
    return frames
