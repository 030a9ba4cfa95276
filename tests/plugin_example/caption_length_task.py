"""Example task plugin: the mean length of a model's captions, in words.

The whole contract (``harness.core.task_result``): a function registered in ``TASKS`` that
takes ``(model, dataset, *, device, work_dir, cache_key, **options)`` and returns a
``TaskResult`` whose metrics carry their unit and direction.
"""
import torch
from torch.utils.data import DataLoader

from harness.core.registry import TASKS
from harness.core.task_result import Metric, TaskResult


@TASKS.register_module(name='caption_length')
def evaluate_caption_length(model, dataset, *, device='cpu', work_dir=None, cache_key=None,
                            batch_size: int = 16, max_length: int = 20) -> TaskResult:
    """Caption every image (greedy) and report the mean number of words per caption."""
    lengths = {}
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=batch_size):
            captions = model.generate_captions(batch['image'].to(device), method='greedy',
                                               max_length=max_length)
            for image_id, caption in zip(batch['image_id'].tolist(), captions):
                lengths[str(image_id)] = float(len(caption.split()))
    mean = sum(lengths.values()) / len(lengths)
    return TaskResult(metrics={'words_per_caption': Metric(mean, 'words', higher_is_better=False)},
                      per_sample={'words_per_caption': lengths}, counts={'images': len(lengths)})
