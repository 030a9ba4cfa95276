"""Stages that make an image-encoder initialisation on ToyWorld and hand it on as an ``init`` part.

Each stage's outputs hold ``init`` (e.g. ``{'vision': {'type': 'open_clip', 'path': ...}}``),
which ``TrainStage(init_parts_from=<stage>)`` loads through ``initialise_weights`` (so the
file's hash and key report reach the results records), plus ``checkpoint`` and the mean
training loss of each epoch (``losses``). Training is seeded by the experiment's seed and
runs on the CPU in about a minute at the default sizes (measured on 2 cores: supervised
25 s, loss 0.61 -> 0.48; CLIP ~70-90 s, loss 4.19 -> 3.65, chance ln 64 = 4.16).
"""
from pathlib import Path
from typing import Callable, List

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from timm.models.vision_transformer import VisionTransformer
from torch import nn
from torch.utils.data import DataLoader, Dataset

from backbones.open_clip_tower import TOYWORLD_MODEL, open_clip_library
from backbones.vit import VIT_SHAPES
from harness.core.registry import DATASETS, STAGES
from harness.core.stage import Stage, StageContext

from ..datasets.annotations import load_records
from ..datasets.media import read_image
from ..datasets.roots import resolve_data_root
from ..transforms import build_image_transform
from .labels import LABELS, image_labels

CLIP_FILE = 'open_clip.pt'
TIMM_FILE = 'timm_vit.pth'


def fit(model: nn.Module, dataset: Dataset, loss_of: Callable[[dict], torch.Tensor],
        epochs: int, batch_size: int, lr: float, weight_decay: float, seed: int,
        what: str) -> List[float]:
    """Train ``model`` with AdamW and a cosine schedule (seeded shuffling); returns the mean
    loss of each epoch."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * len(loader))
    model.train()
    means = []
    for epoch in range(epochs):
        total = 0.0
        for batch in loader:
            loss = loss_of(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
        means.append(total / len(loader))
        print_log(f'{what}: epoch {epoch + 1}/{epochs}, mean loss {means[-1]:.4f}',
                  logger='current')
    return means


class InitStage(Stage):
    """Base of the initialisation stages: they read only their own arguments."""

    config_keys = ()
    shareable = True

    def stage_dir(self, ctx: StageContext) -> Path:
        """The stage's folder, created."""
        folder = ctx.work_dir / self.name
        folder.mkdir(parents=True, exist_ok=True)
        return folder


@STAGES.register_module()
class RandomInitStage(InitStage):
    """No initialisation file: the image encoder keeps its random weights (on purpose)."""

    def run(self, ctx: StageContext) -> dict:
        """``init`` that says so."""
        return dict(init=dict(vision=dict(type='random')))


@STAGES.register_module()
class ClipInitStage(InitStage):
    """Pre-train an open_clip CLIP on image-text pairs with open_clip's ``ClipLoss``; save it
    in open_clip's checkpoint format (``{'epoch', 'name', 'state_dict'}``).

    Args:
        name: stage name.
        dataset: an ``ImageTextPairDataset`` config (ToyWorld's pre-training pairs); its
            pre-processing is set to the CLIP model's.
        model_name: open_clip model name (default the ToyWorld tower's config).
        epochs, batch_size, lr, weight_decay: the AdamW + cosine schedule.
    """

    def __init__(self, name: str, dataset: dict, model_name: str = TOYWORLD_MODEL,
                 epochs: int = 3, batch_size: int = 64, lr: float = 1e-3,
                 weight_decay: float = 0.1):
        super().__init__(name)
        self.dataset_cfg = dataset
        self.model_name = model_name
        self.schedule = dict(epochs=epochs, batch_size=batch_size, lr=lr,
                             weight_decay=weight_decay)

    def run(self, ctx: StageContext) -> dict:
        """Train the CLIP model, save it, hand on its image tower."""
        open_clip = open_clip_library()
        torch.manual_seed(ctx.seed)
        model = open_clip.create_model(self.model_name, pretrained=None)
        pixels = model.visual.preprocess_cfg
        dataset = DATASETS.build(dict(self.dataset_cfg, preprocessing={
            key: pixels[key] for key in ('mean', 'std', 'interpolation')}))
        tokenizer = open_clip.get_tokenizer(self.model_name)
        contrastive = open_clip.ClipLoss()

        def loss_of(batch: dict) -> torch.Tensor:
            image_features, text_features, scale = model(batch['image'], tokenizer(batch['text']))
            return contrastive(image_features, text_features, scale)

        losses = fit(model, dataset, loss_of, seed=ctx.seed, what=f'stage {self.name!r}',
                     **self.schedule)
        path = self.stage_dir(ctx) / CLIP_FILE
        torch.save(dict(epoch=self.schedule['epochs'], name=self.model_name,
                        state_dict=model.state_dict()), path)
        return dict(init=dict(vision=dict(type='open_clip', path=str(path))),
                    checkpoint=str(path), losses=losses)


class ObjectLabelDataset(Dataset):
    """ToyWorld images with multi-hot labels of the shapes and colours their captions name.

    Item: ``{'image': FloatTensor[3, S, S], 'labels': FloatTensor[len(LABELS)]}``; training
    augmentation as BLIP fine-tuning's, without flips (captions say left and right).
    """

    def __init__(self, data_root: str, ann_file: str, image_size: int):
        self.root = resolve_data_root(data_root)
        self.ann_file = self.root / ann_file
        self.labels = image_labels(load_records(self.ann_file))
        self.images = sorted(self.labels)
        self.transform = build_image_transform(image_size, train=True, hflip=False)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        image = read_image(self.root / self.images[index], self.ann_file, index)
        target = torch.zeros(len(LABELS))
        target[self.labels[self.images[index]]] = 1.0
        return dict(image=self.transform(image), labels=target)


@STAGES.register_module()
class SupervisedInitStage(InitStage):
    """Train a timm ViT to tell which object shapes and colours a ToyWorld image holds
    (multi-label, from its captions); save it as a timm checkpoint (a state dict with its
    classifier ``head``, which the ``'timm'`` loader drops).

    The classifier reads the maximum over patch tokens, as the tiny BLIP's ITC does
    (``image_pool='max'``): a 2-block ViT does not learn to gather objects into [CLS] in a
    minute.

    Args:
        name: stage name.
        data_root: the ToyWorld folder.
        ann_file: image-caption records whose images are classified (relative to data_root).
        arch: a ``BlipViT`` shape name (``backbones.vit.VIT_SHAPES``).
        image_size: square input size.
        epochs, batch_size, lr, weight_decay: the AdamW + cosine schedule.
    """

    def __init__(self, name: str, data_root: str, ann_file: str,
                 arch: str = 'vit_tiny_patch8', image_size: int = 64, epochs: int = 10,
                 batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.05):
        super().__init__(name)
        self.data = dict(data_root=data_root, ann_file=ann_file, image_size=image_size)
        self.arch = arch
        self.schedule = dict(epochs=epochs, batch_size=batch_size, lr=lr,
                             weight_decay=weight_decay)

    def run(self, ctx: StageContext) -> dict:
        """Train the classifier, save it, hand on its ViT."""
        torch.manual_seed(ctx.seed)
        model = VisionTransformer(img_size=self.data['image_size'], num_classes=len(LABELS),
                                  **VIT_SHAPES[self.arch])
        dataset = ObjectLabelDataset(**self.data)

        def loss_of(batch: dict) -> torch.Tensor:
            tokens = model.forward_features(batch['image'])
            logits = model.head(tokens[:, 1:].max(dim=1).values)
            return F.binary_cross_entropy_with_logits(logits, batch['labels'])

        losses = fit(model, dataset, loss_of, seed=ctx.seed, what=f'stage {self.name!r}',
                     **self.schedule)
        path = self.stage_dir(ctx) / TIMM_FILE
        torch.save(model.state_dict(), path)
        return dict(init=dict(vision=dict(type='timm', path=str(path))), checkpoint=str(path),
                    losses=losses, labels=list(LABELS))
