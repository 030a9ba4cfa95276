"""Moves collated batches to the model's device in the shape BLIP's ``forward`` takes."""
from mmengine.model import BaseDataPreprocessor

from harness.core.registry import MODELS

IMAGE_KEYS = ('image', 'video')


@MODELS.register_module()
class BlipDataPreprocessor(BaseDataPreprocessor):
    """Split a collated dict into ``inputs`` (images or videos) and ``data_samples`` (the rest).

    Images are already resized and normalised by the dataset transforms; this only moves
    tensors to the device (casting is left to autocast).
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        """``{'image': T, 'text': [...], ...}`` -> ``{'inputs': T, 'data_samples': {...}}``."""
        data = self.cast_data(data)
        key = next((k for k in IMAGE_KEYS if k in data), None)
        if key is None:
            raise KeyError(f'a batch needs one of {IMAGE_KEYS}; got keys {sorted(data)}')
        samples = {k: v for k, v in data.items() if k != key}
        return dict(inputs=data[key], data_samples=samples)
