"""BLIP's training augmentation (transform/randaugment.py, data/__init__.py), op by op.

Expected values are re-derived here from BLIP's definitions, with magnitude M on BLIP's
0-10 scale (MAX_LEVEL = 10):
  Brightness/Sharpness factor (M/10)*1.8 + 0.1  -> 1.0 at M=5 (identity);
  ShearX/ShearY factor (M/10)*0.3               -> 0.15 at M=5, random sign;
  TranslateX/Y offset (M/10)*10 pixels          -> 5 px at M=5, random sign;
  Rotate (M/10)*30 degrees about (W/2, H/2)     -> 15 degrees at M=5, random sign;
  geometric ops: OpenCV warpAffine, bilinear, fill (128, 128, 128);
  each of the 2 ops (drawn with replacement) applied with probability 0.5.
"""
import json
import math

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torchvision import transforms

from tasks.datasets import ImageTextPairDataset
from tasks.transforms import (BLIP_AUGMENTATIONS, CLIP_MEAN, CLIP_STD, BlipRandAugment,
                              ToNormalisedTensor, apply_op, build_image_transform)

GREY = 128


@pytest.fixture
def image():
    """A 24x32 RGB image with every channel's minimum at 0 and some texture."""
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    array[0, 0] = 0
    return array


def _warp(array, matrix):
    """The official geometric op: cv2.warpAffine(forward matrix), bilinear, grey border."""
    height, width = array.shape[:2]
    return cv2.warpAffine(array, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderValue=(GREY, GREY, GREY))


def _bilinear(array, x, y):
    """Reference bilinear sample at float source coordinates, grey outside the image."""
    height, width = array.shape[:2]
    padded = np.pad(array.astype(np.float64), ((1, 1), (1, 1), (0, 0)), constant_values=GREY)
    x0, y0 = math.floor(x), math.floor(y)
    fx, fy = x - x0, y - y0
    corner = lambda yy, xx: padded[min(max(yy, -1), height) + 1, min(max(xx, -1), width) + 1]
    return ((1 - fy) * ((1 - fx) * corner(y0, x0) + fx * corner(y0, x0 + 1))
            + fy * ((1 - fx) * corner(y0 + 1, x0) + fx * corner(y0 + 1, x0 + 1)))


# --- photometric ops --------------------------------------------------------------------------

def test_identity_brightness_and_sharpness_leave_the_image_at_magnitude_5(image):
    # (5/10)*1.8 + 0.1 == 1.0 exactly, and BLIP's brightness table arange(256)*1.0 and
    # sharpness blend at factor 1.0 are identities.
    for name in ('Identity', 'Brightness', 'Sharpness'):
        assert np.array_equal(apply_op(image, name, 5), image), name


def test_brightness_follows_blips_table_at_other_magnitudes(image):
    # Magnitude 0: factor 0.1; magnitude 10: factor 1.9; values scaled in float32, clipped to
    # 255 and truncated.
    for magnitude, factor in ((0, 0.1), (10, 1.9)):
        expected = np.floor(np.minimum(image.astype(np.float32) * np.float32(factor), 255))
        assert np.array_equal(apply_op(image, 'Brightness', magnitude), expected.astype(np.uint8))


def test_sharpness_at_magnitude_0_blends_towards_blips_smoothing_kernel(image):
    # Factor 0.1: interior = smooth + 0.1*(image - smooth), truncated; border rows/columns are
    # left as they are. smooth = 3x3 kernel (1 1 1; 1 5 1; 1 1 1)/13, rounded to uint8.
    padded = np.pad(image.astype(np.float64), ((1, 1), (1, 1), (0, 0)), mode='reflect')
    weights = np.ones((3, 3))
    weights[1, 1] = 5
    smooth = sum(weights[dy, dx] * padded[dy:dy + 24, dx:dx + 32]
                 for dy in range(3) for dx in range(3)) / 13
    smooth = np.round(smooth)
    blend = smooth + np.float32(0.1) * (image - smooth)
    got = apply_op(image, 'Sharpness', 0).astype(np.float64)
    assert np.array_equal(got[[0, -1]], image[[0, -1]])
    assert np.array_equal(got[:, [0, -1]], image[:, [0, -1]])
    assert np.abs(got[1:-1, 1:-1] - np.floor(blend[1:-1, 1:-1])).max() <= 1


def test_equalize_matches_pil(image):
    # BLIP's equalize_func is written to give PIL.ImageOps.equalize's output.
    skewed = (image // 3 + 40).astype(np.uint8)
    for array in (image, skewed):
        expected = np.asarray(ImageOps.equalize(Image.fromarray(array)))
        assert np.array_equal(apply_op(array, 'Equalize', 5), expected)


def test_autocontrast_stretches_zero_min_channels_and_saturates_the_others():
    # BLIP's autocontrast_func: table = arange(256)*(255/(high-low)) - low*scale, truncated.
    # With low = 0 that is int(v*255/high). With low > 0 BLIP's `-low` wraps in uint8 to
    # 256 - low, every entry exceeds 255 and the channel becomes 255 (salesforce/ALBEF#134).
    # A constant channel is left alone.
    red = np.array([[0, 50], [100, 200]], dtype=np.uint8)
    green = np.array([[30, 60], [90, 120]], dtype=np.uint8)
    blue = np.full((2, 2), 77, dtype=np.uint8)
    got = apply_op(np.stack([red, green, blue], axis=-1), 'AutoContrast', 5)
    assert got[..., 0].tolist() == [[int(v * (255 / 200)) for v in row] for row in red.tolist()]
    # 200 * (255/200) is 254.99999999999997 in float64, truncated to 254 as in BLIP.
    assert got[..., 0].tolist() == [[0, 63], [127, 254]]
    assert (got[..., 1] == 255).all()
    assert (got[..., 2] == 77).all()


# --- geometric ops ----------------------------------------------------------------------------

@pytest.mark.parametrize('sign', [1, -1])
def test_translation_moves_five_pixels_and_fills_grey(image, sign):
    # (5/10)*10 = 5 px. Matrix [[1, 0, -offset], [0, 1, 0]]: out(x) = in(x + offset), so a
    # positive offset moves the content left (TranslateX) or up (TranslateY).
    for name, axis in (('TranslateX', 1), ('TranslateY', 0)):
        expected = np.full_like(image, GREY)
        size = image.shape[axis]
        dst = [slice(None)] * 2
        src = [slice(None)] * 2
        if sign == 1:
            dst[axis], src[axis] = slice(0, size - 5), slice(5, size)
        else:
            dst[axis], src[axis] = slice(5, size), slice(0, size - 5)
        expected[tuple(dst)] = image[tuple(src)]
        assert np.array_equal(apply_op(image, name, 5, sign), expected), (name, sign)


@pytest.mark.parametrize('sign', [1, -1])
def test_shear_is_blips_affine_with_factor_0_15(image, sign):
    shear = sign * 0.15
    got_x = apply_op(image, 'ShearX', 5, sign)
    got_y = apply_op(image, 'ShearY', 5, sign)
    # Exactly the official call: float32 matrices, bilinear, grey fill.
    assert np.array_equal(got_x, _warp(image, np.float32([[1, shear, 0], [0, 1, 0]])))
    assert np.array_equal(got_y, _warp(image, np.float32([[1, 0, 0], [shear, 1, 0]])))
    # And what that means: out(x, y) = in(x - s*y, y) for ShearX, in(x, y - s*x) for ShearY
    # (OpenCV's fixed-point interpolation is within 1 of exact bilinear sampling).
    for y in range(image.shape[0]):
        for x in range(image.shape[1]):
            assert np.abs(got_x[y, x] - _bilinear(image, x - shear * y, y)).max() <= 1
            assert np.abs(got_y[y, x] - _bilinear(image, x, y - shear * x)).max() <= 1


@pytest.mark.parametrize('sign', [1, -1])
def test_rotation_is_15_degrees_about_the_image_centre(image, sign):
    # getRotationMatrix2D((W/2, H/2), angle, 1): [[c, s, (1-c)cx - s*cy], [-s, c, s*cx + (1-c)cy]]
    # with c = cos(angle), s = sin(angle); a positive angle turns the content anticlockwise.
    height, width = image.shape[:2]
    angle = sign * 15 * math.pi / 180
    c, s = math.cos(angle), math.sin(angle)
    cx, cy = width / 2, height / 2
    matrix = np.array([[c, s, (1 - c) * cx - s * cy], [-s, c, s * cx + (1 - c) * cy]])
    got = apply_op(image, 'Rotate', 5, sign)
    assert np.array_equal(got, _warp(image, matrix))
    assert (got[0, 0] == GREY).all() and (got[-1, -1] == GREY).all()  # corners leave the frame


# --- sampling ---------------------------------------------------------------------------------

def test_each_op_is_drawn_with_replacement_and_applied_half_the_time():
    # Per image: 2 ops drawn uniformly with replacement from 10, each applied with
    # probability 0.5 -> each op applied 2 * 1/10 * 1/2 = 0.1 times per image on average;
    # 0, 1, 2 ops applied with probability 1/4, 1/2, 1/4; the same op applied twice in
    # 1/10 * 1/4 = 1/40 of the images (never, were the draw without replacement);
    # signed ops negated half of the time.
    augment = BlipRandAugment()
    torch.manual_seed(0)
    draws = 20000
    plans = [augment.sample() for _ in range(draws)]
    applied = {name: 0 for name in BLIP_AUGMENTATIONS}
    negated = signed = 0
    for plan in plans:
        for name, sign in plan:
            applied[name] += 1
            if name in ('ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Rotate'):
                signed += 1
                negated += sign == -1
            else:
                assert sign == 1
    for name, count in applied.items():
        assert abs(count / draws - 0.1) < 0.012, (name, count)
    lengths = np.bincount([len(plan) for plan in plans], minlength=3) / draws
    assert np.allclose(lengths, [0.25, 0.5, 0.25], atol=0.015), lengths
    repeats = sum(len(plan) == 2 and plan[0][0] == plan[1][0] for plan in plans)
    assert 430 <= repeats <= 570  # expected 500, standard deviation 22
    assert abs(negated / signed - 0.5) < 0.02


def test_randomness_comes_from_torch_only(image):
    augment = BlipRandAugment()
    pil = Image.fromarray(image)
    outputs = []
    for numpy_seed in (1, 2):
        np.random.seed(numpy_seed)
        torch.manual_seed(3)
        outputs.append([np.asarray(augment(pil)) for _ in range(30)])
    assert all(np.array_equal(a, b) for a, b in zip(*outputs))
    # __call__ applies exactly the sampled plan.
    torch.manual_seed(4)
    plans = [augment.sample() for _ in range(30)]
    torch.manual_seed(4)
    for plan in plans:
        expected = image
        for name, sign in plan:
            expected = apply_op(expected, name, 5, sign)
        assert np.array_equal(np.asarray(augment(pil)), expected)


# --- the training transform and its crop scale ---------------------------------------------

def _crop(transform):
    return next(t for t in transform.transforms if isinstance(t, transforms.RandomResizedCrop))


def test_training_transform_is_blips_pipeline():
    pipeline = build_image_transform(32, train=True).transforms
    assert [type(t) for t in pipeline] == [
        transforms.RandomResizedCrop, transforms.RandomHorizontalFlip, BlipRandAugment,
        ToNormalisedTensor]
    assert pipeline[0].scale == (0.5, 1.0)  # BLIP create_dataset(min_scale=0.5), fine-tuning
    assert _crop(build_image_transform(32, train=True, crop_scale=[0.2, 1.0])).scale == (0.2, 1.0)
    for bad in ((0.0, 1.0), (0.6, 0.5), (0.2, 1.5), (0.5,)):
        with pytest.raises(ValueError, match='crop_scale'):
            build_image_transform(32, train=True, crop_scale=bad)


def test_image_text_pairs_pass_the_crop_scale_on(tmp_path):
    Image.new('RGB', (20, 20), (10, 200, 30)).save(tmp_path / 'a.png')
    (tmp_path / 'train.json').write_text(json.dumps([{'image': 'a.png', 'caption': 'a'}]))
    default = ImageTextPairDataset(tmp_path, 'train.json', image_size=16)
    pretrain = ImageTextPairDataset(tmp_path, 'train.json', image_size=16, crop_scale=(0.2, 1.0))
    assert _crop(default.transform).scale == (0.5, 1.0)
    assert _crop(pretrain.transform).scale == (0.2, 1.0)
    assert pretrain[0]['image'].shape == (3, 16, 16)


# --- to a normalised tensor, as torchvision's ToTensor + Normalize ----------------------------

def _torchvision_pipeline(train: bool, size: int = 20):
    """The same pipeline spelt with torchvision's ToTensor and Normalize and a PIL RandAugment."""
    resize = (transforms.RandomResizedCrop(size, scale=(0.2, 1.0),
                                           interpolation=transforms.InterpolationMode.BICUBIC)
              if train else transforms.Resize((size, size),
                                              interpolation=transforms.InterpolationMode.BICUBIC))
    return transforms.Compose([resize, *([BlipRandAugment()] if train else []),
                               transforms.ToTensor(), transforms.Normalize(CLIP_MEAN, CLIP_STD)])


@pytest.mark.parametrize('train', [True, False])
def test_the_pipeline_gives_torchvisions_tensors_bit_for_bit(train):
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (17 + i % 9, 23 + i % 5, 3), dtype=np.uint8))
              for i in range(120)]
    ours = build_image_transform(20, train=train, hflip=False, crop_scale=(0.2, 1.0))
    theirs = _torchvision_pipeline(train)
    torch.manual_seed(5)
    expected = [theirs(image) for image in images]
    torch.manual_seed(5)
    got = [ours(image) for image in images]
    assert all(torch.equal(a, b) and b.is_contiguous() and b.shape == (3, 20, 20)
               for a, b in zip(expected, got))


def test_to_normalised_tensor_takes_arrays_and_refuses_what_it_cannot_scale(image):
    to_tensor = ToNormalisedTensor(CLIP_MEAN, CLIP_STD)
    reference = transforms.Normalize(CLIP_MEAN, CLIP_STD)(transforms.ToTensor()(image))
    assert torch.equal(to_tensor(image), reference)
    assert torch.equal(to_tensor(Image.fromarray(image)), reference)
    flipped = image[:, ::-1]  # a view with a negative stride
    assert torch.equal(to_tensor(flipped), transforms.Normalize(CLIP_MEAN, CLIP_STD)(
        transforms.ToTensor()(flipped.copy())))
    with pytest.raises(ValueError, match='8-bit HxWxC'):
        to_tensor(image.astype(np.float32))
    with pytest.raises(ValueError, match='convert it to RGB'):
        to_tensor(Image.fromarray(image).convert('L'))
    with pytest.raises(ValueError, match='has a zero'):
        ToNormalisedTensor(CLIP_MEAN, (0.5, 0.0, 0.5))
