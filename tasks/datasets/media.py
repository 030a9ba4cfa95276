"""Reading images (PIL, or left encoded), with clear errors (video frames:
:mod:`tasks.datasets.video_frames`).

A damaged image is refused rather than half-decoded: Pillow's warnings about truncated or
corrupt data and its decompression-bomb guard, and JPEG scans that end in the wrong place
(:mod:`.jpeg_scan`), all become :class:`BadSampleError`, which ``on_bad_sample='skip'`` skips.
"""
import pathlib
import warnings

import numpy as np
import torch
from PIL import Image

from .errors import bad_sample
from .jpeg_scan import open_checked

SIXTEEN_BIT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N')
SKIP_HINT = "or pass on_bad_sample='skip'."


def to_eight_bit(image: Image.Image) -> Image.Image:
    """An 'L' image from a high-bit-depth grey one, rounding ``value / 257`` (16 bits).

    ``'I;16*'`` hold 0..65535; ``'I'`` (32-bit integers, how 16-bit PNGs used to open) must
    hold 0..65535 too, and ``'F'`` (floats) 0..1; other values have no known scale and raise
    ValueError.
    """
    values = np.asarray(image)
    if image.mode == 'F':
        if not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
            raise ValueError(f"a 32-bit float image ('F') with values {values.min()}.."
                             f"{values.max()}; only 0..1 has a known scale")
        return Image.fromarray(np.rint(values * 255).astype(np.uint8))
    if values.min() < 0 or values.max() > 65535:
        raise ValueError(f"a 32-bit integer image ('I') with values {values.min()}.."
                         f"{values.max()}; only 0..65535 (16 bits) has a known scale")
    return Image.fromarray(((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8))


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB of any PIL image; grey images above 8 bits are scaled, not clipped, to 8 bits."""
    if image.mode in SIXTEEN_BIT_MODES + ('I', 'F'):
        image = to_eight_bit(image)
    return image.convert('RGB')


def _decode(data: bytes) -> Image.Image:
    """Decode encoded image bytes; decoder warnings (truncated or corrupt data, decompression
    bombs) raise instead of passing unnoticed."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        warnings.simplefilter('error', Image.DecompressionBombWarning)
        image = open_checked(data)
    complaints = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    if complaints:
        raise ValueError(f'the decoder warned: {"; ".join(complaints)}')
    return image


def _check_exists(path: pathlib.Path, ann_file, record_index: int) -> None:
    if not path.is_file():
        raise bad_sample(ann_file, f'image file {path} does not exist.',
                         'check data_root/image_root, or drop the record from the annotation '
                         "file (or pass on_bad_sample='skip').", record_index, media=path)


def read_image(path: pathlib.Path, ann_file, record_index: int) -> Image.Image:
    """Open and fully decode an image as RGB; raise BadSampleError if it is missing or bad."""
    _check_exists(path, ann_file, record_index)
    return decode_image(path.read_bytes(), ann_file, record_index, media=path)


def read_encoded(path: pathlib.Path, ann_file, record_index: int) -> torch.Tensor:
    """An image file's bytes as a uint8 tensor, left encoded (:mod:`.device_decode` decodes
    them); raise BadSampleError if the file is missing or empty."""
    _check_exists(path, ann_file, record_index)
    data = path.read_bytes()
    if not data:
        raise bad_sample(ann_file, f'image file {path} is empty.', 'replace the file, or drop '
                         'the record from the annotation file.', record_index, media=path)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def decode_image(data: bytes, ann_file, record_index: int, media) -> Image.Image:
    """Fully decode image bytes as RGB (``media`` names them in errors: a file, or a shard
    member); raise BadSampleError if they are not a sound image."""
    try:
        return to_rgb(_decode(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise bad_sample(ann_file, f'image file {media} is too large to decode safely ({error}).',
                         'downscale the image; if the file is trusted, raise '
                         f'PIL.Image.MAX_IMAGE_PIXELS; {SKIP_HINT}', record_index,
                         media=media) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise bad_sample(ann_file, f'image file {media} is corrupt or not an image ({error}).',
                         f'replace the file, {SKIP_HINT}', record_index, media=media) from error
