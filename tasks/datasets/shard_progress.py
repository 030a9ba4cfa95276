"""Shard-granular resumption of a streamed epoch, and its bad-sample report.

:class:`ShardProgressHook` plans every epoch of a :class:`.web_shards.WebShardDataset`
(the runner's seed and epoch), collects the shards whose every sample went through a
training step (the items' ``finished_shards``), and keeps them in each checkpoint's
``meta['web_shards']`` as ``{'epoch', 'finished_by_rank'}`` (shard paths per rank). A run
resumed from a mid-epoch checkpoint re-plans that epoch without those shards: it repeats
only the shards that were in flight and skips none. mmengine's epoch loop restarts an
interrupted epoch from its first iteration, which is what makes this the whole story.
"""
from mmengine import dist
from mmengine.hooks import CheckpointHook, Hook

from harness.core.registry import HOOKS

META_KEY = 'web_shards'


@HOOKS.register_module()
class ShardProgressHook(Hook):
    """Plan streamed epochs, record finished shards in checkpoints, report bad samples.

    Needs the train dataset to be a ``WebShardDataset`` (anything with ``start_epoch``,
    ``shard_names``, ``shard_indices`` and ``bad_sample_report``). Under several ranks the
    finished shards are gathered only at iterations where an iteration-based
    ``CheckpointHook`` saves (checkpoints are written by rank 0 alone).
    """

    priority = 'ABOVE_NORMAL'  # after_train_iter before the CheckpointHook (VERY_LOW)

    def __init__(self):
        self.finished: set = set()  # this rank's finished shard indices, current epoch
        self.by_rank: dict = {}  # every rank's, as last gathered
        self.resumed: dict = {}

    def before_train_epoch(self, runner) -> None:
        """Plan the epoch: the runner's seed and epoch, less the shards a resume finished."""
        dataset = runner.train_dataloader.dataset
        names = self.resumed.get('finished', ()) if self.resumed.get('epoch') == runner.epoch \
            else ()
        self.finished = set(dataset.shard_indices(names))
        self.by_rank = {}
        self.resumed = {}
        dataset.start_epoch(runner.epoch, runner.seed, self.finished)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Add the shards this batch finished; gather all ranks' before a checkpoint."""
        for text in (data_batch or {}).get('finished_shards', ()):
            self.finished.update(int(shard) for shard in text.split(',') if shard)
        if dist.get_world_size() > 1 and self._checkpoint_due(runner):
            gathered = dist.all_gather_object(sorted(self.finished))
            self.by_rank = dict(enumerate(gathered))

    def _checkpoint_due(self, runner) -> bool:
        """Whether an iteration-based checkpoint hook saves after this iteration."""
        return any(isinstance(hook, CheckpointHook) and not hook.by_epoch and (
            self.every_n_train_iters(runner, hook.interval, hook.save_begin)
            or (hook.save_last and self.is_last_train_iter(runner)))
            for hook in runner.hooks)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the finished shards (per rank) of the current epoch in the checkpoint."""
        dataset = runner.train_dataloader.dataset
        by_rank = self.by_rank or {runner.rank: sorted(self.finished)}
        checkpoint.setdefault('meta', {})[META_KEY] = dict(
            epoch=runner.epoch,
            finished_by_rank={rank: dataset.shard_names(shards)
                              for rank, shards in by_rank.items()})

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Remember the checkpoint's finished shards for the epoch it was saved in."""
        state = (checkpoint.get('meta') or {}).get(META_KEY)
        if state:
            self.resumed = dict(epoch=state['epoch'], finished=[
                name for names in state['finished_by_rank'].values() for name in names])

    def after_train_epoch(self, runner) -> None:
        """Log the bad samples met so far (an epoch-end checkpoint starts the next epoch anew)."""
        report = runner.train_dataloader.dataset.bad_sample_report()
        self.finished, self.by_rank = set(), {}
        runner.logger.info(f'web shards: {report.count} bad samples skipped of {report.total} '
                           f'read so far; first shards with bad samples: {report.first_files}')
