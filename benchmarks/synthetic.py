"""Synthetic inputs the benchmarks share: random captions and a retrieval-shaped split.

Images come from a small pool of random tensors, each item shifted by its index so that no
two are equal, which costs an add instead of drawing 440k random numbers per 384 px image
(drawing them bounded the protocol's image pass at about 380 img/s on 4 workers).
"""
from typing import List

import torch
from torch.utils.data import Dataset

WORDS = ('a man woman dog cat riding sitting on the red blue green bus street table with two '
         'people near large small white black of in front next to').split()
IMAGE_POOL = 16


def random_caption(generator: torch.Generator, length: int) -> str:
    """``length`` random words."""
    return ' '.join(WORDS[w] for w in torch.randint(len(WORDS), (length,), generator=generator))


def random_captions(count: int, length: int = 12, seed: int = 0) -> List[str]:
    """``count`` captions of ``length`` random words."""
    generator = torch.Generator().manual_seed(seed)
    return [random_caption(generator, length) for _ in range(count)]


class SyntheticSplit(Dataset):
    """``num_images`` distinct synthetic images with ``captions_per_image`` random captions
    of 6-15 words each: the attributes of a retrieval split (``texts``, ``txt2img``,
    ``img2txt``) and those of a web-image set (``images``, items' ``index``)."""

    def __init__(self, num_images: int, image_size: int, captions_per_image: int = 5):
        generator = torch.Generator().manual_seed(0)
        self.pool = torch.randn(IMAGE_POOL, 3, image_size, image_size, generator=generator)
        self.images = [f'web_{index:06d}.jpg' for index in range(num_images)]
        self.texts, self.txt2img, self.img2txt = [], [], []
        for image in range(num_images):
            self.img2txt.append([])
            for _ in range(captions_per_image):
                self.img2txt[image].append(len(self.texts))
                self.texts.append(random_caption(
                    generator, int(torch.randint(6, 16, (1,), generator=generator))))
                self.txt2img.append(image)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = self.pool[index % IMAGE_POOL] + index / len(self)
        return dict(image=image, image_index=index, index=index)
