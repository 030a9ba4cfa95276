"""Image pre-processing as in BLIP: bicubic resizing, CLIP normalisation, light augmentation.

Randomness comes only from torch's generator, so training augmentation is reproducible
under ``torch.manual_seed`` (per DataLoader worker, through torch's worker seeding).
"""
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# BLIP's RandomAugment leaves out colour-changing operations (Color, Contrast, Posterize,
# Solarize): captions name colours.
BLIP_AUGMENTATIONS = ('Identity', 'AutoContrast', 'Brightness', 'Sharpness', 'Equalize',
                      'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Rotate')


class BlipRandAugment(transforms.RandAugment):
    """torchvision's RandAugment restricted to BLIP's operations.

    BLIP uses 2 operations at magnitude 5 on a 0-10 scale, hence 11 magnitude bins.
    """

    def __init__(self, num_ops: int = 2, magnitude: int = 5):
        super().__init__(num_ops=num_ops, magnitude=magnitude, num_magnitude_bins=11,
                         interpolation=InterpolationMode.BICUBIC)

    def _augmentation_space(self, num_bins: int, image_size) -> dict:
        space = super()._augmentation_space(num_bins, image_size)
        missing = set(BLIP_AUGMENTATIONS) - set(space)
        if missing:
            raise RuntimeError(f'torchvision RandAugment lacks {sorted(missing)}; '
                               'pin the torchvision version from setup.cfg.')
        return {name: space[name] for name in BLIP_AUGMENTATIONS}


def build_image_transform(image_size: int, train: bool, hflip: bool = True):
    """PIL image → normalised float tensor [3, S, S].

    Args:
        image_size: side S of the square output.
        train: random resized crop (scale 0.5-1), horizontal flip and RandAugment(2, 5)
            when True; a plain bicubic resize when False.
        hflip: whether training flips horizontally (BLIP does; turn off when captions say
            'left'/'right', as ToyWorld's do).
    """
    normalise = [transforms.ToTensor(), transforms.Normalize(CLIP_MEAN, CLIP_STD)]
    if not train:
        return transforms.Compose([
            transforms.Resize((image_size, image_size), interpolation=InterpolationMode.BICUBIC),
            *normalise])
    flip = [transforms.RandomHorizontalFlip()] if hflip else []
    return transforms.Compose([
        transforms.RandomResizedCrop(image_size, scale=(0.5, 1.0),
                                     interpolation=InterpolationMode.BICUBIC),
        *flip, BlipRandAugment(), *normalise])


def frames_to_tensor(frames, image_size: int) -> torch.Tensor:
    """uint8 frames (T, H, W, 3) → eval-normalised float tensor [T, 3, S, S]."""
    to_tensor = build_image_transform(image_size, train=False)
    return torch.stack([to_tensor(Image.fromarray(frame)) for frame in frames])
