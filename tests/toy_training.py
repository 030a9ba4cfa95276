"""A seconds-long mmengine training run (a linear regressor) with the harness's runtime
config, for the tests of training faults and checkpoint saving; and a disk that fills up."""
import builtins
import errno
import os

import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from torch.utils.data import Dataset

from harness.core.registry import DATASETS, MODELS
from harness.runner_builder import build_runner


@MODELS.register_module(force=True)
class ToyRegressor(BaseModel):
    """``y = w x``, trained on mean squared error (loss term ``loss_mse``)."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, inputs, target, mode='loss'):
        return dict(loss_mse=((self.linear(inputs).squeeze(1) - target) ** 2).mean())

    def num_parameters(self) -> int:
        """Parameter count (what ``TrainStage`` records)."""
        return sum(param.numel() for param in self.parameters())


@DATASETS.register_module(force=True)
class ToyPairs(Dataset):
    """16 fixed (x, y) pairs."""

    def __init__(self):
        generator = torch.Generator().manual_seed(0)
        self.inputs = torch.randn(16, 4, generator=generator)
        self.targets = self.inputs.sum(dim=1)

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, index):
        return dict(inputs=self.inputs[index], target=self.targets[index])


def toy_config(work_dir, max_epochs=2, resume=False, lr_jump_at=None, max_keep_ckpts=1,
               name='toy'):
    """A runner config on the harness's default runtime; ``lr_jump_at`` multiplies the
    learning rate by 1e30 from that epoch on (a diverging run)."""
    cfg = Config.fromfile('configs/_base_/default_runtime.py').to_dict()
    cfg['default_hooks']['checkpoint']['max_keep_ckpts'] = max_keep_ckpts
    cfg['default_hooks']['logger']['interval'] = 1
    cfg.update(
        model=dict(type='ToyRegressor'), work_dir=str(work_dir), resume=resume,
        experiment_name=name,
        train_dataloader=dict(dataset=dict(type='ToyPairs'), batch_size=4, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        param_scheduler=[dict(type='MultiStepLR', by_epoch=True, milestones=[lr_jump_at],
                              gamma=1e30)] if lr_jump_at else [])
    return cfg


def train(work_dir, **options):
    """Train the toy model; returns the runner."""
    runner = build_runner(toy_config(work_dir, **options))
    runner.train()
    return runner


def weights(path):
    """The state dict stored in a checkpoint."""
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


class _FillingDisk:
    """A file whose writes store half of the data, then fail with ENOSPC."""

    def __init__(self, file):
        self._file = file

    def write(self, data):
        self._file.write(data[:len(data) // 2])
        self._file.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._file.__exit__(*exc)


def fill_disk_on(monkeypatch, name_part: str) -> None:
    """Make every write to a file whose path contains ``name_part`` hit a full disk
    (through ``open`` and ``os.fdopen``, as mmengine and the atomic writers use)."""

    def path_of(file):
        name = file.name
        return os.readlink(f'/proc/self/fd/{name}') if isinstance(name, int) else str(name)

    def failing(opener):
        def open_file(*args, **kwargs):
            file = opener(*args, **kwargs)
            mode = args[1] if len(args) > 1 else kwargs.get('mode', 'r')
            return _FillingDisk(file) if 'w' in mode and name_part in path_of(file) else file
        return open_file

    monkeypatch.setattr(builtins, 'open', failing(builtins.open))
    monkeypatch.setattr(os, 'fdopen', failing(os.fdopen))
