"""mmengine loops that run BLIP's retrieval protocol: thin adapters over the task evaluator.

Select one with ``val_cfg=dict(type='RetrievalValLoop', k=128)`` (or ``test_cfg`` and
``RetrievalTestLoop``). The loop takes the dataset, batch size and workers of the runner's
``val_dataloader``/``test_dataloader`` and ignores ``val_evaluator``/``test_evaluator``
(mmengine still wants one configured: ``dict()`` will do). Metrics are reported as
``retrieval/TR@1`` ... ``retrieval/R_mean``, so checkpoints can be selected with
``default_hooks=dict(checkpoint=dict(save_best='retrieval/R_mean', rule='greater'))``.
"""
from typing import Optional, Union

from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop

from harness.core.registry import LOOPS
from .evaluate import evaluate_retrieval


class RetrievalLoop(BaseLoop):
    """Runs :func:`evaluate_retrieval` on the loop's dataset between the phase's hooks.

    Args:
        runner: the mmengine runner.
        dataloader: the phase's data loader (or its config); only its dataset, batch size
            and number of workers are used.
        k: ITM re-ranking depth (256 COCO, 128 Flickr30K/MSRVTT).
        itm_batch_size: texts per ITM forward pass.
        batch_size: feature-extraction batch size; default: the data loader's.
        max_text_length: text token limit (35).
        block_size: images per re-ranking block.
        autocast_dtype: ``'bfloat16'``/``'float16'`` to evaluate under autocast, None for the
            model's own precision.
        weights_dtype: ``'bfloat16'`` to evaluate a copy of the model cast to it (faster on
            GPUs than autocast; not with ``autocast_dtype``). The trained model is untouched.
        itm_packing: re-rank the candidate texts of several images in one ITM pass (the
            fast path on GPUs; scores equal the plain path's up to float rounding).
        compile_layers: ``torch.compile`` the model's layers for the evaluation (True or a
            dict of options; the model is left as it was); best with ``itm_packing``.
        cache: cache features and scores under the runner's work dir, keyed by a hash of
            the weights (worth it for test runs; validation weights change every time).
        prefix: metric name prefix.
        evaluator: ignored (mmengine passes the configured evaluator to every loop).
    """

    phase = ''

    def __init__(self, runner, dataloader, k: int, itm_batch_size: int = 256,
                 batch_size: Optional[int] = None, max_text_length: int = 35,
                 block_size: int = 64, autocast_dtype: Optional[str] = None,
                 weights_dtype: Optional[str] = None, itm_packing: bool = False,
                 compile_layers: Union[bool, dict] = False, cache: bool = False,
                 prefix: str = 'retrieval', evaluator=None):
        super().__init__(runner, dataloader)
        self.k = k
        self.itm_batch_size = itm_batch_size
        self.batch_size = batch_size or self.dataloader.batch_size
        self.max_text_length = max_text_length
        self.block_size = block_size
        self.autocast_dtype = autocast_dtype
        self.weights_dtype = weights_dtype
        self.itm_packing = itm_packing
        self.compile_layers = compile_layers
        self.cache = cache
        self.prefix = prefix
        self.evaluator = None

    def evaluate(self) -> dict:
        """Retrieval metrics of the runner's model on the loop's dataset, with the prefix."""
        model = self.runner.model
        if is_model_wrapper(model):
            model = model.module
        result = evaluate_retrieval(
            model, self.dataloader.dataset, k=self.k, batch_size=self.batch_size,
            itm_batch_size=self.itm_batch_size, device=next(model.parameters()).device,
            work_dir=self.runner.work_dir if self.cache else None,
            num_workers=self.dataloader.num_workers, max_text_length=self.max_text_length,
            block_size=self.block_size, autocast_dtype=self.autocast_dtype,
            weights_dtype=self.weights_dtype, itm_packing=self.itm_packing,
            compile_layers=self.compile_layers)
        return {f'{self.prefix}/{name}': value for name, value in result.values().items()}

    def run(self) -> dict:
        """``before_<phase>[_epoch]`` hooks, evaluation, ``after_<phase>_epoch`` (metrics) hooks."""
        self.runner.call_hook(f'before_{self.phase}')
        self.runner.call_hook(f'before_{self.phase}_epoch')
        metrics = self.evaluate()
        self.runner.call_hook(f'after_{self.phase}_epoch', metrics=metrics)
        self.runner.call_hook(f'after_{self.phase}')
        return metrics


@LOOPS.register_module()
class RetrievalValLoop(RetrievalLoop):
    """Validation by BLIP's retrieval protocol (e.g. to keep the best fine-tuning checkpoint)."""

    phase = 'val'


@LOOPS.register_module()
class RetrievalTestLoop(RetrievalLoop):
    """Testing by BLIP's retrieval protocol."""

    phase = 'test'
