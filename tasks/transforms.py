"""Image pre-processing as in BLIP: bicubic resizing, CLIP normalisation, light augmentation.

Training augmentation follows BLIP's ``data/__init__.py``: RandomResizedCrop (scale 0.5-1 for
fine-tuning, 0.2-1 for pre-training), horizontal flip, then BLIP's own RandAugment
(``transform/randaugment.py``), reproduced op by op by :class:`BlipRandAugment`.

Randomness comes only from torch's generator, so training augmentation is reproducible
under ``torch.manual_seed`` (per DataLoader worker, through torch's worker seeding).
"""
from typing import Callable, Mapping, Optional, Sequence, Union

import cv2
import numpy as np
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from harness.core.model_api import (CLIP_MEAN, CLIP_STD,  # noqa: F401 (video frames use them)
                                    DEFAULT_PREPROCESSING, PREPROCESSING_KEYS)
FINETUNE_CROP_SCALE = (0.5, 1.0)
# BLIP's RandomAugment leaves out colour-changing operations (Color, Contrast, Posterize,
# Solarize): captions name colours.
BLIP_AUGMENTATIONS = ('Identity', 'AutoContrast', 'Brightness', 'Sharpness', 'Equalize',
                      'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Rotate')
# BLIP's magnitude scale and constants: magnitudes run 0-10; translation is in pixels
# (10 at magnitude 10, whatever the image size); geometric ops fill with mid grey.
MAX_MAGNITUDE = 10
TRANSLATE_PIXELS = 10.0
MAX_SHEAR = 0.3
MAX_ROTATE_DEGREES = 30
FILL = (128, 128, 128)
OP_PROBABILITY = 0.5
SIGNED_OPS = frozenset({'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Rotate'})


def enhance_factor(magnitude: float) -> float:
    """Brightness/Sharpness factor: 0.1 at magnitude 0, 1.0 (identity) at 5, 1.9 at 10."""
    return (magnitude / MAX_MAGNITUDE) * 1.8 + 0.1


def _per_channel(image: np.ndarray, tune: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.stack([tune(image[..., c]) for c in range(image.shape[-1])], axis=-1)


def _autocontrast_channel(channel: np.ndarray) -> np.ndarray:
    low, high = int(channel.min()), int(channel.max())
    if high <= low:
        return channel
    if low > 0:
        # BLIP computes the offset as -low on a uint8 scalar, which wraps to 256 - low: every
        # value then maps above 255 and the channel saturates (salesforce/ALBEF#134). Kept,
        # because BLIP's models were trained with it.
        return np.full_like(channel, 255)
    table = np.arange(256) * (255 / high)
    return table.clip(0, 255).astype(np.uint8)[channel]


def autocontrast(image: np.ndarray) -> np.ndarray:
    """BLIP's AutoContrast: stretch each channel to 0-255 (truncating), as BLIP computes it."""
    return _per_channel(image, _autocontrast_channel)


def _equalize_channel(channel: np.ndarray) -> np.ndarray:
    histogram = np.bincount(channel.ravel(), minlength=256)
    step = histogram[histogram > 0][:-1].sum() // 255
    if step == 0:
        return channel
    counts = np.concatenate(([step // 2], histogram[:-1]))
    return (np.cumsum(counts) // step).clip(0, 255).astype(np.uint8)[channel]


def equalize(image: np.ndarray) -> np.ndarray:
    """Histogram equalisation per channel, PIL's ``ImageOps.equalize`` rule (as BLIP)."""
    return _per_channel(image, _equalize_channel)


def brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """Scale values by ``factor`` in float32, clip and truncate to uint8 (BLIP's table)."""
    table = (np.arange(256, dtype=np.float32) * factor).clip(0, 255).astype(np.uint8)
    return table[image]


def sharpness(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend with BLIP's 3x3 smoothing (centre 5, others 1, /13) on the interior pixels.

    Factor 1 is the identity, 0 the smoothed image. Unlike BLIP, out-of-range blends are
    clipped before the uint8 cast (BLIP's unclipped cast is platform-dependent there).
    """
    if factor == 1.0:
        return image
    kernel = np.ones((3, 3), dtype=np.float32)
    kernel[1, 1] = 5
    kernel /= 13
    smoothed = cv2.filter2D(image, -1, kernel)
    if factor == 0.0:
        return smoothed
    out = image.astype(np.float32)
    inner = smoothed[1:-1, 1:-1].astype(np.float32)
    out[1:-1, 1:-1] = inner + factor * (out[1:-1, 1:-1] - inner)
    return out.clip(0, 255).astype(np.uint8)


def warp(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """OpenCV affine warp (bilinear, forward ``matrix``) with BLIP's grey fill."""
    height, width = image.shape[:2]
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderValue=FILL)


def _shear_x(image: np.ndarray, magnitude: float, sign: int) -> np.ndarray:
    shear = sign * ((magnitude / MAX_MAGNITUDE) * MAX_SHEAR)
    return warp(image, np.float32([[1, shear, 0], [0, 1, 0]]))


def _shear_y(image: np.ndarray, magnitude: float, sign: int) -> np.ndarray:
    shear = sign * ((magnitude / MAX_MAGNITUDE) * MAX_SHEAR)
    return warp(image, np.float32([[1, 0, 0], [shear, 1, 0]]))


def _translate_x(image: np.ndarray, magnitude: float, sign: int) -> np.ndarray:
    offset = sign * ((magnitude / MAX_MAGNITUDE) * TRANSLATE_PIXELS)
    return warp(image, np.float32([[1, 0, -offset], [0, 1, 0]]))


def _translate_y(image: np.ndarray, magnitude: float, sign: int) -> np.ndarray:
    offset = sign * ((magnitude / MAX_MAGNITUDE) * TRANSLATE_PIXELS)
    return warp(image, np.float32([[1, 0, 0], [0, 1, -offset]]))


def _rotate(image: np.ndarray, magnitude: float, sign: int) -> np.ndarray:
    degrees = sign * ((magnitude / MAX_MAGNITUDE) * MAX_ROTATE_DEGREES)
    height, width = image.shape[:2]
    return warp(image, cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1))


_OPS: dict[str, Callable[[np.ndarray, float, int], np.ndarray]] = {
    'Identity': lambda image, magnitude, sign: image,
    'AutoContrast': lambda image, magnitude, sign: autocontrast(image),
    'Equalize': lambda image, magnitude, sign: equalize(image),
    'Brightness': lambda image, magnitude, sign: brightness(image, enhance_factor(magnitude)),
    'Sharpness': lambda image, magnitude, sign: sharpness(image, enhance_factor(magnitude)),
    'ShearX': _shear_x, 'ShearY': _shear_y,
    'TranslateX': _translate_x, 'TranslateY': _translate_y,
    'Rotate': _rotate,
}


def apply_op(image: np.ndarray, name: str, magnitude: float, sign: int = 1) -> np.ndarray:
    """Apply BLIP's operation ``name`` at ``magnitude`` (0-10) to a uint8 HxWx3 array.

    ``sign`` (+1/-1) negates the shear, translation or rotation; other ops ignore it.
    Shear: factor 0.03*magnitude; translation: magnitude pixels; rotation:
    3*magnitude degrees counter-clockwise about (W/2, H/2).
    """
    return _OPS[name](image, magnitude, sign)


class BlipRandAugment:
    """BLIP's ``RandomAugment(2, 5, isPIL=True, augs=BLIP_AUGMENTATIONS)`` on torch's RNG.

    Per image: ``num_ops`` operations drawn uniformly *with* replacement; each applied with
    probability 1/2; a signed op (shear, translate, rotate) is negated with probability 1/2.
    PIL image in; PIL image out, or the uint8 HxWx3 array with ``as_array=True`` (for
    :class:`ToNormalisedTensor` next, without a round trip through PIL).
    """

    def __init__(self, num_ops: int = 2, magnitude: float = 5, as_array: bool = False):
        if not 0 <= magnitude <= MAX_MAGNITUDE:
            raise ValueError(f'BlipRandAugment: magnitude={magnitude} is outside BLIP\'s '
                             f'0-{MAX_MAGNITUDE} scale; BLIP uses 5')
        self.num_ops = num_ops
        self.magnitude = magnitude
        self.as_array = as_array

    def sample(self) -> list[tuple[str, int]]:
        """The (operation, sign) pairs to apply to one image, in order."""
        chosen = torch.randint(len(BLIP_AUGMENTATIONS), (self.num_ops,)).tolist()
        plan = []
        for index in chosen:
            if torch.rand(()).item() > OP_PROBABILITY:
                continue
            name = BLIP_AUGMENTATIONS[index]
            negate = name in SIGNED_OPS and torch.rand(()).item() > 0.5
            plan.append((name, -1 if negate else 1))
        return plan

    def __call__(self, image: Image.Image) -> Union[Image.Image, np.ndarray]:
        array = np.array(image.convert('RGB'))
        for name, sign in self.sample():
            array = apply_op(array, name, self.magnitude, sign)
        return array if self.as_array else Image.fromarray(array)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_ops={self.num_ops}, magnitude={self.magnitude}, '
                f'as_array={self.as_array})')


class ToNormalisedTensor:
    """An 8-bit RGB image (PIL, or a uint8 HxWx3 array) → float tensor [3, H, W] of
    ``(pixel / 255 - mean) / std``: torchvision's ``ToTensor`` then ``Normalize``, value for
    value, in a third of their operations (it runs once per training sample)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean, self.std = tuple(mean), tuple(std)
        if 0 in self.std:
            raise ValueError(f'{type(self).__name__}: std={list(std)} has a zero, which would '
                             'divide by zero; use the backbone\'s own std')
        self._mean = torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1)
        self._std = torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, image: Union[Image.Image, np.ndarray]) -> torch.Tensor:
        array = np.array(image) if isinstance(image, Image.Image) else np.ascontiguousarray(image)
        if array.dtype != np.uint8 or array.ndim != 3:
            raise ValueError(f'{type(self).__name__}: expected an 8-bit HxWxC image, got '
                             f'{array.dtype} values of shape {array.shape}; convert it to RGB '
                             f'first (PIL: image.convert("RGB"))')
        pixels = torch.from_numpy(array).permute(2, 0, 1)
        pixels = pixels.to(torch.float32, memory_format=torch.contiguous_format)
        return pixels.div_(255).sub_(self._mean).div_(self._std)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(mean={self.mean}, std={self.std})'


def _check_crop_scale(crop_scale: Sequence[float]) -> tuple[float, float]:
    scale = tuple(float(s) for s in crop_scale)
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f'crop_scale={tuple(crop_scale)} must be (low, high) with '
                         '0 < low <= high <= 1 (BLIP: (0.2, 1.0) pre-training, '
                         '(0.5, 1.0) fine-tuning)')
    return scale


def resolved_preprocessing(preprocessing: Optional[Mapping]) -> dict:
    """``preprocessing`` (``mean``/``std``/``interpolation``, any left out) completed with
    CLIP's defaults; an unknown key or interpolation raises ``ValueError`` naming it."""
    given = dict(preprocessing or {})
    unknown = sorted(set(given) - set(PREPROCESSING_KEYS))
    if unknown:
        raise ValueError(f'preprocessing: unknown key(s) {unknown}; the keys are '
                         f'{list(PREPROCESSING_KEYS)}')
    resolved = {**DEFAULT_PREPROCESSING, **given}
    modes = [mode.value for mode in InterpolationMode]
    if resolved['interpolation'] not in modes:
        raise ValueError(f'preprocessing.interpolation={resolved["interpolation"]!r}; use one '
                         f'of {modes}')
    return resolved


def build_image_transform(image_size: int, train: bool, hflip: bool = True,
                          crop_scale: Sequence[float] = FINETUNE_CROP_SCALE,
                          preprocessing: Optional[Mapping] = None):
    """PIL image → normalised float tensor [3, S, S].

    Args:
        image_size: side S of the square output.
        train: random resized crop, horizontal flip and BLIP's RandAugment(2, 5) when
            True; a plain bicubic resize when False.
        hflip: whether training flips horizontally (BLIP does; turn off when captions say
            'left'/'right', as ToyWorld's do).
        crop_scale: RandomResizedCrop's area range when training; BLIP uses (0.5, 1.0) to
            fine-tune and (0.2, 1.0) to pre-train.
        preprocessing: the image backbone's ``mean``, ``std`` and ``interpolation``
            (``harness.core.model_api.backbone_preprocessing``); default CLIP's, bicubic.
    """
    pixels = resolved_preprocessing(preprocessing)
    interpolation = InterpolationMode(pixels['interpolation'])
    normalise = ToNormalisedTensor(pixels['mean'], pixels['std'])
    if not train:
        return transforms.Compose([
            transforms.Resize((image_size, image_size), interpolation=interpolation),
            normalise])
    flip = [transforms.RandomHorizontalFlip()] if hflip else []
    return transforms.Compose([
        transforms.RandomResizedCrop(image_size, scale=_check_crop_scale(crop_scale),
                                     interpolation=interpolation),
        *flip, BlipRandAugment(as_array=True), normalise])
