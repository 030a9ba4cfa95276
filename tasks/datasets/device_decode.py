"""Encoded image files → the model's input batch, decoded and resized on the model's device.

Evaluation sets built with ``decode='device'`` (:mod:`tasks.datasets.eval_images`) leave
each image's file bytes undecoded, so DataLoader workers only read files.
:func:`images_on_device`, through which the evaluation loops move every image batch to the
model, turns such a batch into the float ``[B, 3, S, S]`` tensor that the CPU path
(:func:`tasks.transforms.build_image_transform`, eval mode) makes: JPEGs are decoded
together by ``torchvision.io.decode_jpeg`` on the device (nvJPEG on CUDA, libjpeg on the
CPU), other formats one by one by ``decode_image`` on the CPU; each image is resized to
S x S with antialiasing (bicubic: PIL's kernel) and rounded to 8 bits, as PIL's resize
is, then scaled to [0, 1] and normalised with the backbone's mean and std.

The result is close to the CPU path's, not identical. In 8-bit levels, the normalisation
undone: torchvision's native 8-bit resize (CPUs with AVX2) is at most 3 off, mean below
0.1; the float resize of CUDA (and of other CPUs) is about 0.2 off on average, up to 10 on
up-scaled noisy images, since PIL rounds and clips its intermediate rows to 8 bits and
torch does not; on CUDA nvJPEG's inverse DCT and chroma upsampling add a few levels of
their own. A file the decoder cannot read raises
:class:`~tasks.datasets.errors.BadSampleError` naming it; unlike the CPU path, JPEG scans
that libjpeg only warns about (:mod:`tasks.datasets.jpeg_scan`) and decompression bombs
are not refused. (torchvision 0.29 deprecates its image decoders in favour of TorchCodec;
they still work.)
"""
from collections import defaultdict
from dataclasses import dataclass
from typing import List, Sequence, Tuple, Union

import torch
from torchvision.io import ImageReadMode, decode_image, decode_jpeg
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from .errors import BadSampleError, bad_sample

# Modes whose torch antialiased kernels match PIL's; PIL's others have no tensor version.
DEVICE_INTERPOLATIONS = ('bicubic', 'bilinear')
JPEG_MAGIC = (0xFF, 0xD8, 0xFF)
Device = Union[str, torch.device]


@dataclass(frozen=True)
class ModelImageFormat:
    """What the model's input images are: side ``size``, per-channel ``mean``/``std`` of
    pixels in [0, 1], and the resize ``interpolation`` (a torchvision mode value)."""

    size: int
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    interpolation: str

    def __post_init__(self):
        if self.interpolation not in DEVICE_INTERPOLATIONS:
            raise ValueError(f"decode='device' resizes with {DEVICE_INTERPOLATIONS}, not "
                             f"{self.interpolation!r}; use decode='cpu' for this backbone")


@dataclass(frozen=True)
class EncodedImage:
    """One image file's bytes (``data``: uint8 ``[n]``) and what names it in errors."""

    data: torch.Tensor
    path: str
    ann_file: str
    record_index: int

    def bad(self, error: Exception) -> BadSampleError:
        """The error saying this file does not decode."""
        return bad_sample(self.ann_file, f'image file {self.path} is corrupt or not an image '
                          f'({error}).', "replace the file, or evaluate with decode='cpu' and "
                          "on_bad_sample='skip'.", self.record_index, media=self.path)


@dataclass(frozen=True)
class EncodedImages:
    """A collated batch of encoded images and the format the model wants them in."""

    images: List[EncodedImage]
    image_format: ModelImageFormat

    def __len__(self) -> int:
        return len(self.images)


def is_jpeg(data: torch.Tensor) -> bool:
    """Whether the bytes start like a JPEG file."""
    return tuple(data[:len(JPEG_MAGIC)].tolist()) == JPEG_MAGIC


def decode_on_cpu(image: EncodedImage) -> torch.Tensor:
    """uint8 RGB ``[3, H, W]`` of any format torchvision reads (JPEG, PNG, WebP, GIF)."""
    try:
        pixels = decode_image(image.data, mode=ImageReadMode.RGB)
    except RuntimeError as error:
        raise image.bad(error) from error
    return pixels if pixels.dtype == torch.uint8 else F.to_dtype(pixels, torch.uint8, scale=True)


def decode_jpeg_alone(image: EncodedImage, device: torch.device) -> torch.Tensor:
    """One JPEG on ``device``; a file nvJPEG refuses is decoded on the CPU if libjpeg can."""
    try:
        return decode_jpeg(image.data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError as error:
        if device.type == 'cpu':
            raise image.bad(error) from error
    return decode_on_cpu(image).to(device)


def decode_jpegs(images: Sequence[EncodedImage], device: torch.device) -> List[torch.Tensor]:
    """uint8 RGB ``[3, H, W]`` of each JPEG on ``device``, decoded as one batch; when the
    batch fails, image by image, so the error names the bad file."""
    try:
        return decode_jpeg([image.data for image in images], mode=ImageReadMode.RGB,
                           device=device)
    except RuntimeError:
        return [decode_jpeg_alone(image, device) for image in images]


def decoded_pixels(images: Sequence[EncodedImage], device: torch.device) -> List[torch.Tensor]:
    """uint8 RGB ``[3, H, W]`` of every image on ``device``, in order."""
    jpegs = [index for index, image in enumerate(images) if is_jpeg(image.data)]
    pixels: List[torch.Tensor] = [None] * len(images)
    if jpegs:
        for index, decoded in zip(jpegs, decode_jpegs([images[i] for i in jpegs], device)):
            pixels[index] = decoded
    for index, image in enumerate(images):
        if pixels[index] is None:
            pixels[index] = decode_on_cpu(image).to(device, non_blocking=True)
    return pixels


def resized(pixels: Sequence[torch.Tensor], image_format: ModelImageFormat) -> torch.Tensor:
    """uint8 ``[B, 3, S, S]``: each image resized with antialiasing, images of one shape
    together (one kernel per shape rather than per image)."""
    by_shape = defaultdict(list)
    for index, image in enumerate(pixels):
        by_shape[tuple(image.shape)].append(index)
    side = image_format.size
    out = torch.empty(len(pixels), 3, side, side, dtype=torch.uint8, device=pixels[0].device)
    for indices in by_shape.values():
        out[indices] = F.resize(torch.stack([pixels[i] for i in indices]), [side, side],
                                interpolation=InterpolationMode(image_format.interpolation),
                                antialias=True)
    return out


def decode_to_model_input(batch: EncodedImages, device: Device) -> torch.Tensor:
    """Float ``[B, 3, S, S]`` on ``device``: decoded, resized, scaled to [0, 1], normalised."""
    device, image_format = torch.device(device), batch.image_format
    images = resized(decoded_pixels(batch.images, device), image_format).float().div_(255)
    mean = torch.tensor(image_format.mean, device=device).view(-1, 1, 1)
    std = torch.tensor(image_format.std, device=device).view(-1, 1, 1)
    return images.sub_(mean).div_(std)


def images_on_device(images: Union[torch.Tensor, EncodedImages], device: Device
                     ) -> torch.Tensor:
    """A batch's images as model input on ``device``: a float tensor (``decode='cpu'``) is
    moved there; encoded images (``decode='device'``) are decoded there."""
    if isinstance(images, EncodedImages):
        return decode_to_model_input(images, device)
    return images.to(device, non_blocking=True)
