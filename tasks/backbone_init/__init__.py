"""Initial weights for BLIP's image encoder made on ToyWorld, as experiment stages.

With no pre-trained weights offline, the backbone ablation makes its own:
:class:`~.stages.ClipInitStage` pre-trains a tiny open_clip CLIP on ToyWorld's pre-training
pairs with open_clip's own contrastive loss and saves an open_clip checkpoint;
:class:`~.stages.SupervisedInitStage` trains a tiny timm ViT to tell which object shapes and
colours an image holds (labels read from its captions, :mod:`.labels`) and saves a timm
checkpoint; :class:`~.stages.RandomInitStage` keeps random weights. Each hands on an ``init``
part for ``TrainStage(init_parts_from=...)``.
"""
from . import stages  # noqa: F401
