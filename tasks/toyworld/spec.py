"""The size and seed of a ToyWorld data set, and the random streams derived from them."""
import dataclasses
import hashlib
import json
import zlib

import numpy as np

# Bump when the generator's output changes for an unchanged spec, so caches regenerate.
# 2: adds the NoCaps val split; 3: video QA in MSRVTT-QA format, image-grammar questions;
# 4: adds annotations/grounding_test.json (object boxes of the test images).
GENERATOR_VERSION = 4
WEB_FORMATS = ('json', 'webdataset')


@dataclasses.dataclass(frozen=True)
class ToyWorldSpec:
    """Everything that determines a generated ToyWorld (same spec → byte-identical files).

    Image counts are per split; ``web_noise_fraction`` is the share of web pairs whose
    caption is deliberately wrong (mismatched, attribute-swapped or generic).
    """

    seed: int = 0
    image_size: int = 64
    n_train: int = 1500
    n_val: int = 200
    n_test: int = 200
    captions_per_image: int = 5
    n_web: int = 2000
    web_noise_fraction: float = 0.35
    n_flickr_train: int = 300
    n_flickr_val: int = 100
    n_flickr_test: int = 100
    # 5 questions per image: 2500/500/500 questions, so a trained model's accuracy separates
    # from the majority-answer prior (~35% per question type) by far more than its noise.
    # VQA images come last in the image order and draw from their own streams: resizing the
    # VQA splits changes no other file (the vocabulary of the default spec stays the same).
    n_vqa_train: int = 500
    n_vqa_val: int = 100
    n_vqa_test: int = 100
    questions_per_image: int = 5
    n_videos: int = 32
    frames_per_video: int = 16
    video_fps: int = 8
    questions_per_video: int = 3
    # 'json' (BLIP's pretrain_web.json) or 'webdataset': the JSON files plus the same pairs
    # as tar shards of web_shard_size samples in web_shards/ (img2dataset's layout). Left
    # out of to_dict() at their defaults, so the default world's files and cache folder
    # stay as they were.
    web_format: str = 'json'
    web_shard_size: int = 256

    def __post_init__(self):
        if self.image_size < 16 or self.image_size % 2:
            raise ValueError(f'ToyWorldSpec.image_size={self.image_size}: use an even size '
                             '>= 16 (H.264 video needs even sides).')
        if not 0.0 <= self.web_noise_fraction <= 1.0:
            raise ValueError(f'ToyWorldSpec.web_noise_fraction={self.web_noise_fraction}: '
                             'use a fraction in [0, 1].')
        counts = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name.startswith('n_')}
        for name, count in counts.items():
            if count < 1:
                raise ValueError(f'ToyWorldSpec.{name}={count}: every split needs >= 1 item.')
        if self.frames_per_video < 2 or self.captions_per_image < 1:
            raise ValueError('ToyWorldSpec: use frames_per_video >= 2 and '
                             'captions_per_image >= 1.')
        if self.web_format not in WEB_FORMATS or self.web_shard_size < 1:
            raise ValueError(f'ToyWorldSpec.web_format={self.web_format!r}, web_shard_size='
                             f'{self.web_shard_size}: use a format of {WEB_FORMATS} and a '
                             'positive shard size.')
        if not 1 <= self.questions_per_image <= 99:
            raise ValueError(f'ToyWorldSpec.questions_per_image={self.questions_per_image}: '
                             'use 1-99 (question ids embed the index in two digits).')

    @classmethod
    def tiny(cls, seed: int = 0) -> 'ToyWorldSpec':
        """A spec small enough for unit tests (generates in a few seconds)."""
        return cls(seed=seed, image_size=32, n_train=16, n_val=6, n_test=6, n_web=40,
                   n_flickr_train=8, n_flickr_val=4, n_flickr_test=4, n_vqa_train=6,
                   n_vqa_val=4, n_vqa_test=4, n_videos=4, frames_per_video=16)

    def to_dict(self) -> dict:
        """The spec plus the generator version, as stored in ``toyworld_spec.json``."""
        fields = dataclasses.asdict(self)
        if self.web_format == 'json':
            del fields['web_format'], fields['web_shard_size']
        return {'generator_version': GENERATOR_VERSION, **fields}

    def digest(self) -> str:
        """A short hash naming this spec's default cache folder."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def random_stream(seed: int, *keys) -> np.random.Generator:
    """An independent random generator for one named part of the world.

    Streams are keyed by name (and index), so resizing one split leaves the others unchanged.
    """
    words = [seed] + [zlib.crc32(str(key).encode()) for key in keys]
    return np.random.default_rng(words)
