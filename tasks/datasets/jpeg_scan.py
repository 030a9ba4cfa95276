"""Decoding a sequential JPEG while checking that its scan data ends where the image does.

libjpeg notices corrupt entropy-coded data when the Huffman decoder finishes the last block
before the end of the scan ("extraneous bytes before marker") or runs into the end marker
before the last block ("premature end of data segment"), but it only warns, and Pillow
discards its warnings: the damaged image decodes without a word. This module decodes the
image through a stream that hands Pillow the scan's last bytes one at a time, followed by
filler bytes and the end marker, and checks how far the decoder read: a sound scan is done
within the decoder's look-ahead past its last byte; a damaged one stops well before it or
eats into the filler. Progressive and multi-scan files are decoded as usual (libjpeg reads
them whole before the first row), as are files that are not JPEG.
"""
import io
import struct
from typing import Optional

from PIL import Image

SEQUENTIAL_FRAMES = (0xC0, 0xC1)  # SOF0 baseline, SOF1 extended sequential (Huffman)
NOT_FRAMES = (0xC4, 0xC8, 0xCC)  # DHT, JPG, DAC share the 0xC0-0xCF range
START_OF_SCAN, END_OF_IMAGE = 0xDA, 0xD9
LOOKAHEAD = 8  # bytes libjpeg's 64-bit bit buffer may read past the last bits it needs
FILLER = 64  # bytes of zeros between the scan data and the end marker
STEPPED = 16  # scan bytes before the end handed over one at a time


class CorruptScanError(ValueError):
    """The entropy-coded data of a JPEG does not end where the image does."""


class _SteppedTail(io.BytesIO):
    """A stream that serves its bytes from ``stepped_from`` on one at a time."""

    def __init__(self, data: bytes, stepped_from: int):
        super().__init__(data)
        self.stepped_from = stepped_from

    def read(self, size: Optional[int] = -1) -> bytes:
        position = self.tell()
        if position >= self.stepped_from:
            size = 1
        elif size is None or size < 0 or position + size > self.stepped_from:
            size = self.stepped_from - position
        return super().read(size)


def _skip_entropy_data(data: bytes, position: int) -> Optional[int]:
    """The offset of the marker ending the entropy-coded data at ``position`` (None: no end)."""
    while True:
        position = data.find(b'\xff', position)
        if position < 0 or position + 1 >= len(data):
            return None
        following = data[position + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:  # stuffed byte, restart marker
            position += 2
        elif following == 0xFF:  # fill byte before a marker
            position += 1
        else:
            return position


def single_scan_bounds(data: bytes) -> Optional[tuple[int, int]]:
    """``(start, end)`` of the scan data of a one-scan sequential JPEG; None for anything else.

    ``end`` is the offset of the end-of-image marker that closes the scan.
    """
    if data[:2] != b'\xff\xd8':
        return None
    position, sequential, bounds = 2, False, None
    while position + 2 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        if marker == END_OF_IMAGE:
            return bounds if sequential else None
        if bounds is not None or position + 4 > len(data):
            return None  # a second scan, or a cut header
        if marker in SEQUENTIAL_FRAMES:
            sequential = True
        elif 0xC0 <= marker <= 0xCF and marker not in NOT_FRAMES:
            return None  # progressive, lossless or arithmetic-coded
        position += 2 + struct.unpack('>H', data[position + 2:position + 4])[0]
        if marker == START_OF_SCAN:
            start, position = position, _skip_entropy_data(data, position)
            if position is None:
                return None
            bounds = (start, position)
    return None


def open_checked(data: bytes) -> Image.Image:
    """Open and fully decode image bytes; raise CorruptScanError for a damaged JPEG scan.

    Other damage surfaces as Pillow reports it (OSError, SyntaxError, ValueError).
    """
    bounds = single_scan_bounds(data)
    if bounds is None:
        image = Image.open(io.BytesIO(data))
        image.load()
        return image
    start, end = bounds
    stream = _SteppedTail(data[:end] + bytes(FILLER) + b'\xff\xd9', max(start, end - STEPPED))
    image = Image.open(stream, formats=('JPEG',))
    image.load()
    overrun = stream.tell() - end
    if overrun < 0:
        raise CorruptScanError('corrupt JPEG data: the image was complete before the end of '
                               'its scan data (extraneous bytes)')
    if overrun > LOOKAHEAD:
        raise CorruptScanError('corrupt JPEG data: the scan data ends before the last block '
                               'of the image')
    return image
