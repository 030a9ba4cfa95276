"""Load official BLIP, Hugging Face BLIP, BERT, timm ViT and open_clip checkpoints into our BLIP.

``load_checkpoint`` reads a checkpoint (a ``.pth``/``.bin``/``.safetensors`` file, a
``save_pretrained`` directory, or an in-memory state dict), tells its kind from its keys,
renames the keys (:mod:`backbones.key_maps`), fits what can be fitted (``pos_embed`` at
another resolution (timm's and open_clip's tables), a vocabulary grown by
``[DEC]``/``[ENC]``, size-1 dimensions of ``class_embedding``; a tensor of the right element
count but another layout, e.g. a transposed projection, is a mismatch, never reshaped), sets
model settings the checkpoint was trained with (Hugging Face BLIP's LayerNorm eps) and
returns a :class:`LoadReport` naming every key that was missing, unexpected, dropped,
reshaped or mismatched: unlike the official loader, nothing is dropped
silently. Pickled files are always read with ``weights_only=True``; a file that needs
more is refused, never re-read unsafely.

``save_official_checkpoint`` writes ``{'model': state_dict}`` in official BLIP's key layout.
"""
import json
import pickle
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as load_safetensors
from torch import nn

from harness.core.registry import FUNCTIONS
from harness.core.safe_globals import register_mmengine_safe_globals

from . import key_maps
from .vit import interpolate_pos_embed

Shape = Tuple[int, ...]
Source = Union[str, Path, Mapping[str, torch.Tensor]]

WEIGHT_FILES = ('model.safetensors', 'model.safetensors.index.json',
                'pytorch_model.bin', 'pytorch_model.bin.index.json')
VOCAB_TABLE_SUFFIXES = ('word_embeddings.weight', 'cls.predictions.bias',
                        'cls.predictions.decoder.weight')
LISTED_PER_SECTION = 20
TORCH_MAGIC = (b'PK\x03\x04', b'\x80')  # torch.save's zip archive, or its legacy pickle
LFS_POINTER = b'version https://git-lfs'
REDOWNLOAD = 're-download or re-save the file (compare its size with the original)'


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read, or (``strict=True``) does not fit the model."""


class UnsafeCheckpointError(CheckpointError):
    """A pickled checkpoint holds objects that weights-only loading refuses (possible code)."""


# ---------------------------------------------------------------- report
@dataclass
class Reshaped:
    """A checkpoint tensor fitted to the model's shape (``how`` says in which way)."""

    key: str
    old_shape: Shape
    new_shape: Shape
    how: str

    def __str__(self):
        return f'{self.key} {list(self.old_shape)} -> {list(self.new_shape)}: {self.how}'


@dataclass
class Mismatched:
    """A checkpoint tensor whose shape cannot be fitted; the model keeps its own values."""

    key: str
    checkpoint_key: str
    checkpoint_shape: Shape
    model_shape: Shape

    def __str__(self):
        origin = '' if self.checkpoint_key == self.key else f' (from {self.checkpoint_key})'
        return (f'{self.key}{origin}: checkpoint {list(self.checkpoint_shape)} vs model '
                f'{list(self.model_shape)}')


@dataclass
class Disagreement:
    """Checkpoint copies of one shared model tensor whose values differ; ``kept`` was loaded."""

    kept: str
    differing: List[str]

    def __str__(self):
        return f'{self.kept} differs from {", ".join(self.differing)} (kept {self.kept})'


@dataclass
class LoadReport:
    """Everything :func:`load_checkpoint` did, key by key.

    Attributes:
        source: the file, directory or ``'<state dict>'`` that was read.
        kind: ``'official BLIP'``, ``'Hugging Face BLIP'`` or ``'BERT'``.
        loaded: model keys set from the checkpoint (one name per shared tensor).
        missing: model keys this kind of checkpoint should hold but this one lacks.
        unexpected: checkpoint keys with no place in the model.
        reshaped: tensors fitted to the model (interpolated, reshaped, vocabulary rows).
        mismatched: tensors whose shapes cannot be fitted (the model keeps its values).
        disagreeing: copies of a tensor the model shares (sharing policy, tied LM weights)
            whose values differ in the checkpoint.
        changed: model settings set to the checkpoint's (LayerNorm eps), see
            :class:`SettingChange`.
        copied: ``(momentum key, online key)`` pairs the checkpoint lacks, set equal to the
            online weights once those are loaded (BLIP's momentum encoders start as copies).
        newly_initialised: keys this kind of checkpoint never holds (BERT: cross-attention).
        not_in_source: keys outside what this kind of checkpoint describes (left as they were).
        ignored: ``(checkpoint key, why)`` dropped on purpose (index buffers, non-tensors,
            BERT's token types and pooler, timm's classifier, parts outside ``scope``).
        notes: configuration differences and model changes worth knowing.
    """

    source: str
    kind: str
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    reshaped: List[Reshaped] = field(default_factory=list)
    mismatched: List[Mismatched] = field(default_factory=list)
    disagreeing: List[Disagreement] = field(default_factory=list)
    changed: List['SettingChange'] = field(default_factory=list)
    copied: List[Tuple[str, str]] = field(default_factory=list)
    newly_initialised: List[str] = field(default_factory=list)
    not_in_source: List[str] = field(default_factory=list)
    ignored: List[Tuple[str, str]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def has_problems(self) -> bool:
        """Whether anything is missing, unexpected, mismatched or disagreeing."""
        return bool(self.missing or self.unexpected or self.mismatched or self.disagreeing)

    def counts(self) -> Dict[str, int]:
        """How many keys each section holds (for records: where an initialisation came from)."""
        return {name: len(getattr(self, name)) for name in REPORT_SECTIONS}

    def __str__(self):
        lines = [f'{self.kind} checkpoint {self.source}: {len(self.loaded)} tensors loaded']
        sections = [
            ('missing', self.missing),
            ('unexpected', self.unexpected),
            ('mismatched (model keeps its values)', self.mismatched),
            ('shared copies disagree', self.disagreeing),
            ('reshaped', self.reshaped),
            ('settings differing from the checkpoint\'s (set to its values unless strict)',
             self.changed),
            ('dropped on purpose', [f'{key} ({why})' for key, why in self.ignored]),
            ('notes', self.notes),
        ]
        for title, items in sections:
            lines += _section(title, [str(item) for item in items])
        summaries = [
            ('momentum copies filled from online weights', [key for key, _ in self.copied]),
            ('newly initialised (never in this kind of checkpoint)', self.newly_initialised),
            ('not in this kind of checkpoint (left as they were)', self.not_in_source),
        ]
        for title, keys in summaries:
            if keys:
                lines.append(f'  {title} ({len(keys)}): {_summarise_modules(keys)}')
        return '\n'.join(lines)


REPORT_SECTIONS = ('loaded', 'missing', 'unexpected', 'reshaped', 'mismatched', 'disagreeing',
                   'changed', 'copied', 'newly_initialised', 'not_in_source', 'ignored')


@dataclass
class SettingChange:
    """A LayerNorm eps of the model that differs from the one the checkpoint was trained with.

    ``modules`` are the model's top-level modules whose LayerNorms get the checkpoint's eps;
    ``fix`` is the model config that builds the model with that value from the start.
    """

    config_field: str
    checkpoint_value: float
    model_value: float
    modules: Tuple[str, ...]
    fix: str

    def __str__(self):
        return (f'LayerNorm eps of {", ".join(self.modules)}: {self.model_value!r} -> '
                f'{self.checkpoint_value!r} (config.json {self.config_field}; build the model with '
                f'{self.fix} to match from the start)')

    def apply(self, model: nn.Module):
        """Set ``eps`` of every LayerNorm in ``modules`` (and the text config's, if any)."""
        for name in self.modules:
            for module in getattr(model, name).modules():
                if isinstance(module, nn.LayerNorm):
                    module.eps = self.checkpoint_value
        if self.config_field.startswith('text_config.') and hasattr(model, 'med_config'):
            model.med_config.layer_norm_eps = self.checkpoint_value


def _section(title: str, items: List[str]) -> List[str]:
    if not items:
        return []
    shown = [f'    {item}' for item in items[:LISTED_PER_SECTION]]
    if len(items) > LISTED_PER_SECTION:
        shown.append(f'    ... and {len(items) - LISTED_PER_SECTION} more')
    return [f'  {title} ({len(items)}):'] + shown


def _summarise_modules(keys: List[str]) -> str:
    """``'text_encoder.encoder.layer.*.crossattention (20), temp (1)'``-style counts."""
    counts: Dict[str, int] = defaultdict(int)
    for key in keys:
        if '.crossattention.' in key:
            layer = key.split('.crossattention.')[0]
            module = re.sub(r'\.\d+(\.|$)', r'.*\1', layer) + '.crossattention'
        else:
            module = key.partition('.')[0]
        counts[module] += 1
    return ', '.join(f'{module} ({count})' for module, count in counts.items())


# ---------------------------------------------------------------- reading
def read_checkpoint(source: Source) -> Tuple[Dict[str, object], str, Optional[dict]]:
    """``(state dict, description of the source, config.json or None)`` of ``source``.

    A file that cannot be read (empty, truncated, a text or Git LFS pointer file, malformed
    JSON) raises :class:`CheckpointError` naming the file and the fix.
    """
    if isinstance(source, Mapping):
        return _unwrap(source, '<state dict>'), '<state dict>', None
    path = Path(source).expanduser()
    state = {}
    for weight_file in weight_files(path):
        state.update(_read_weight_file(weight_file))
    config_file = path / 'config.json'
    config = _read_config(config_file) if path.is_dir() and config_file.is_file() else None
    return state, str(path), config


def missing_config_notes(kind: str, where: str) -> List[str]:
    """The note that a Hugging Face BLIP checkpoint came without the config.json it needs."""
    if kind != 'huggingface':
        return []
    return [f'{where} comes without a config.json: cannot check layer_norm_eps; the model '
            f'keeps its configured eps (save the config.json next to the weights, or load the '
            f'save_pretrained directory, to have it checked and set)']


def _unreadable(path: Path, why: str, fix: str = REDOWNLOAD) -> CheckpointError:
    return CheckpointError(f'cannot read {path}: {why}. Fix: {fix}')


def _read_json(path: Path, fix: str) -> dict:
    """A JSON object from ``path``; CheckpointError if it is not UTF-8 JSON holding an object."""
    try:
        loaded = json.loads(path.read_text(encoding='utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _unreadable(path, f'it is not valid UTF-8 JSON ({error})', fix) from None
    if not isinstance(loaded, dict):
        raise _unreadable(path, f'it holds a JSON {type(loaded).__name__}, not an object', fix)
    return loaded


def _read_config(path: Path) -> dict:
    """A checkpoint's config.json, with the fields the loader uses checked for type."""
    fix = ("repair or re-download config.json, or delete it (the loader then keeps the model's "
           'LayerNorm eps and says so)')
    config = _read_json(path, fix)
    sections = [('', config)]
    for name in ('vision_config', 'text_config'):
        if name in config and not isinstance(config[name], dict):
            raise _unreadable(path, f'"{name}" is a {type(config[name]).__name__}, not an '
                              f'object', fix)
        sections.append((f'{name}.', config.get(name, {})))
    for prefix, section in sections:
        eps = section.get('layer_norm_eps', 0.0)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)):
            raise _unreadable(path, f'"{prefix}layer_norm_eps" is {eps!r}, not a number', fix)
    return config


def weight_files(source: Union[str, Path]) -> List[Path]:
    """The files :func:`read_checkpoint` reads for ``source`` (a file, or a directory's weights)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return _weight_files(path)
    if path.is_file():
        return [path]
    raise FileNotFoundError(f'no checkpoint at {path}: pass a .pth/.bin/.safetensors file or a '
                            f'directory holding one of {WEIGHT_FILES}')


def _weight_files(directory: Path) -> List[Path]:
    for name in WEIGHT_FILES:
        candidate = directory / name
        if not candidate.is_file():
            continue
        if name.endswith('.index.json'):
            weight_map = _read_json(candidate, REDOWNLOAD).get('weight_map')
            if not weight_map:
                raise CheckpointError(f'{candidate} has no "weight_map"; it is not a shard index')
            return [directory / shard for shard in sorted(set(weight_map.values()))]
        return [candidate]
    raise CheckpointError(f'{directory} holds none of {WEIGHT_FILES}; point at a '
                          f'save_pretrained directory or at the weight file itself')


def _read_weight_file(path: Path) -> Dict[str, object]:
    with path.open('rb') as file:
        head = file.read(64)
    if not head:
        raise _unreadable(path, 'the file is empty')
    if head.startswith(LFS_POINTER):
        raise _unreadable(path, 'it is a Git LFS pointer, not the weights',
                          'run `git lfs pull` in its repository, or download the file itself')
    if path.suffix == '.safetensors':
        try:
            return load_safetensors(str(path), device='cpu')
        except SafetensorError as error:
            raise _unreadable(path, f'it is truncated or not a safetensors file ({error})') \
                from None
    if not head.startswith(TORCH_MAGIC):
        raise _unreadable(path, f'it is not a PyTorch checkpoint (it starts with {head[:16]!r})',
                          'point at the .pth/.bin/.safetensors weight file')
    try:
        loaded = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(_unsafe_message(path, str(error))) from None
    except (EOFError, RuntimeError, KeyError, IndexError, ValueError) as error:
        first_line = str(error).splitlines()[0] if str(error) else ''
        raise _unreadable(path, f'it is truncated or corrupt ({type(error).__name__}: '
                          f'{first_line})') from None
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f'{path} holds a {type(loaded).__name__}, not a state dict '
                              f'(nor a dict with a "model" state dict)')
    return _unwrap(loaded, str(path))


def _unsafe_message(path: Path, error: str) -> str:
    found = re.search(r'GLOBAL (\S+)', error)
    what = f'it references {found.group(1)}' if found else 'it holds objects other than tensors'
    return (f'refused to load {path}: {what}, which weights-only unpickling does not allow '
            f'because unpickling it could run code stored in the file. This harness never '
            f'loads checkpoints with weights_only=False. If you trust the file, re-save its '
            f'tensors (e.g. as .safetensors) in an environment you trust and load that.')


def _unwrap(loaded: Mapping, where: str) -> Dict[str, object]:
    """The state dict inside an official (``'model'``) or mmengine (``'state_dict'``) file."""
    for wrapper in ('model', 'state_dict'):
        if isinstance(loaded.get(wrapper), Mapping):
            return dict(loaded[wrapper])
    if not any(torch.is_tensor(value) for value in loaded.values()):
        raise CheckpointError(f'{where} holds no tensors (keys {sorted(loaded)[:8]}); expected a '
                              f'state dict or a dict with a "model" state dict')
    return dict(loaded)


# ---------------------------------------------------------------- kinds
@dataclass(frozen=True)
class CheckpointKind:
    """Naming rules of one family of checkpoints (see :mod:`backbones.key_maps`)."""

    title: str
    to_model: Callable[[str], List[str]]
    absent: Callable[[str], str]
    ignored: Callable[[str], Optional[str]] = key_maps.ignored_reason


KINDS = {
    'official': CheckpointKind('official BLIP', key_maps.official_to_model,
                               key_maps.official_absent),
    'huggingface': CheckpointKind('Hugging Face BLIP', key_maps.huggingface_to_model,
                                  key_maps.huggingface_absent),
    'bert': CheckpointKind('BERT', key_maps.bert_to_model, key_maps.bert_absent,
                           key_maps.bert_ignored),
    'timm': CheckpointKind('timm ViT', key_maps.timm_to_model, key_maps.timm_absent,
                           key_maps.timm_ignored),
    'open_clip': CheckpointKind('open_clip CLIP', key_maps.open_clip_to_model,
                                key_maps.open_clip_absent, key_maps.open_clip_ignored),
}


def detect_kind(state: Mapping[str, object], where: str) -> str:
    """``'huggingface'``, ``'official'`` or ``'bert'``, told from the key prefixes."""
    keys = list(state)
    if any(key.startswith('vision_model.') for key in keys):
        return 'huggingface'
    if any(key.startswith(('visual_encoder.', 'text_encoder.', 'text_decoder.')) for key in keys):
        return 'official'
    if any(key.startswith(('bert.', 'embeddings.', 'encoder.layer.')) for key in keys):
        return 'bert'
    raise CheckpointError(
        f'cannot tell what {where} is: no key starts with visual_encoder./text_encoder. '
        f'(official BLIP), vision_model. (Hugging Face BLIP) or embeddings./bert. (BERT); '
        f'its first keys are {keys[:5]}')


# ---------------------------------------------------------------- settings
VISION_MODULES = ('visual_encoder', 'visual_encoder_m')
TEXT_MODULES = ('text_encoder', 'text_encoder_m', 'text_decoder')
HF_DEFAULT_EPS = {'vision_config': 1e-5, 'text_config': 1e-12}  # transformers' BlipConfig


def layer_norm_eps(model: nn.Module, modules: Sequence[str]) -> Optional[float]:
    """The LayerNorm eps of ``modules`` (the first one found; ``None`` if they have none)."""
    return next((sub.eps for name in modules for sub in getattr(model, name).modules()
                 if isinstance(sub, nn.LayerNorm)), None)


def setting_changes(kind: str, config: Mapping, model: nn.Module,
                    scope: Optional[Sequence[str]]) -> List[SettingChange]:
    """LayerNorm eps a Hugging Face BLIP ``config.json`` was trained with, where ours differ."""
    if kind != 'huggingface':
        return []
    parts = [('vision_config', VISION_MODULES, 'vision=dict(layer_norm_eps={!r})'),
             ('text_config', TEXT_MODULES, 'text_overrides=dict(layer_norm_eps={!r})')]
    changes = []
    for section, modules, fix in parts:
        present = tuple(name for name in modules if hasattr(model, name)
                        and (scope is None or key_maps.online_module(name) in scope))
        theirs = config.get(section, {}).get('layer_norm_eps', HF_DEFAULT_EPS[section])
        ours = layer_norm_eps(model, present)
        if ours is not None and ours != theirs:
            changes.append(SettingChange(f'{section}.layer_norm_eps', theirs, ours, present,
                                         fix.format(theirs)))
    return changes


def config_notes(kind: str, config: Mapping, model: nn.Module) -> List[str]:
    """BERT ``config.json`` fields whose values differ from MED's (BLIP keeps its own config)."""
    med = getattr(model, 'med_config', None)
    if kind != 'bert' or med is None:
        return []
    checks = [  # (config field, checkpoint value, model value, how to match)
        ('layer_norm_eps', config.get('layer_norm_eps', 1e-12), med.layer_norm_eps,
         "text_overrides=dict(layer_norm_eps=<checkpoint's>)"),
        ('hidden_act', config.get('hidden_act', 'gelu'), 'gelu', 'MED uses exact GELU only'),
        ('position_embedding_type', config.get('position_embedding_type', 'absolute'),
         'absolute', 'MED has absolute positions only'),
    ]
    return [f'config.json {name} is {theirs!r} but the model uses {ours!r}; outputs will differ '
            f'({fix})' for name, theirs, ours, fix in checks if theirs != ours]


def resize_image_encoders(model: nn.Module, image_size: int, report: LoadReport):
    """Switch the model's image encoders (online and momentum) to ``image_size`` pixels.

    Nothing happens when the model already runs at that size; an encoder that cannot
    change resolution (no ``set_input_size``, e.g. a plugin backbone) is refused then.
    """
    if getattr(model, 'image_size', None) == image_size:
        return
    for name in ('visual_encoder', 'visual_encoder_m'):
        encoder = getattr(model, name, None)
        if encoder is None or getattr(encoder, 'image_size', None) == image_size:
            continue
        if not hasattr(encoder, 'set_input_size'):
            raise CheckpointError(f'{name} ({type(encoder).__name__}) cannot switch to '
                                  f'{image_size} px (it has no set_input_size); build it at '
                                  f'that size, or give the dataset the model\'s image size')
        report.notes.append(f'{name} switched from {encoder.image_size} to {image_size} px')
        encoder.set_input_size(img_size=(image_size, image_size))
        encoder.image_size = image_size


# ---------------------------------------------------------------- fitting and planning
def fit_to_model(key: str, value: torch.Tensor,
                 target: torch.Tensor) -> Tuple[Optional[torch.Tensor], Optional[str]]:
    """``(value fitted to target's shape, how)``; ``(value, None)`` if it fits as is,
    ``(None, None)`` if it cannot be fitted."""
    if value.shape == target.shape:
        return value, None
    if (key.endswith('pos_embed') and value.dim() == 3 == target.dim()
            and value.shape[::2] == target.shape[::2]):
        try:
            resized = interpolate_pos_embed(value, target.shape[1] - 1)
        except ValueError:
            return None, None
        old, new = int(round((value.shape[1] - 1) ** 0.5)), int(round((target.shape[1] - 1) ** 0.5))
        return resized, f'bicubic {old}x{old} -> {new}x{new} patch grid, [CLS] slot kept'
    if (key.endswith('positional_embedding') and value.dim() == 2 == target.dim()
            and value.shape[1] == target.shape[1]):  # open_clip's table has no batch axis
        fitted, how = fit_to_model('pos_embed', value[None], target[None])
        return (None, None) if fitted is None else (fitted[0], how)
    if _squeezed(value.shape) == _squeezed(target.shape):
        return value.reshape(target.shape), 'same values, size-1 dimensions added or removed'
    if key.endswith(VOCAB_TABLE_SUFFIXES) and value.shape[1:] == target.shape[1:]:
        rows = min(value.shape[0], target.shape[0])
        fitted = target.detach().clone()
        fitted[:rows] = value[:rows]
        rest = (f'model rows {rows}.. keep their initialisation' if target.shape[0] > rows
                else f'checkpoint rows {rows}.. dropped')
        return fitted, f'copied the {rows} shared vocabulary rows; {rest}'
    return None, None


def _squeezed(shape: Sequence[int]) -> Tuple[int, ...]:
    """``shape`` without its size-1 dimensions.

    The only reshape the loader accepts is one that adds or drops such dimensions (Hugging
    Face's ``class_embedding`` ``[D]`` vs timm's ``cls_token`` ``[1, 1, D]``): it keeps every
    value where it was. Any other shape of the same element count (a transposed projection)
    would load scrambled, so it is a mismatch.
    """
    return tuple(size for size in shape if size != 1)


def shared_groups(targets: Mapping[str, torch.Tensor]) -> List[List[str]]:
    """Model keys grouped by the tensor they name (shared modules, tied weights), in order."""
    groups: Dict[int, List[str]] = {}
    for key, tensor in targets.items():
        groups.setdefault(id(tensor), []).append(key)
    return list(groups.values())


def collect_candidates(state: Mapping[str, object], kind: CheckpointKind,
                       targets: Mapping[str, torch.Tensor], report: LoadReport,
                       outside: Sequence[str] = (), scope: Sequence[str] = (),
                       unused: Mapping[str, str] = MappingProxyType({})
                       ) -> Dict[str, List[Tuple[str, torch.Tensor]]]:
    """Model key -> ``[(checkpoint key, tensor), ...]``; records unexpected/ignored keys.

    ``outside`` are model keys left out of this load (``scope``): checkpoint keys that map only
    there are dropped on purpose, not unexpected. ``unused`` maps top-level modules the model
    has no place for by design (a VQA model's missing ITC/ITM heads) to why: checkpoint keys
    of those are dropped on purpose too.
    """
    candidates: Dict[str, List[Tuple[str, torch.Tensor]]] = defaultdict(list)
    outside = set(outside)
    for checkpoint_key, value in state.items():
        why = 'not a tensor' if not torch.is_tensor(value) else kind.ignored(checkpoint_key)
        mapped = kind.to_model(checkpoint_key) if not why else []
        model_keys = [key for key in mapped if key in targets]
        if not why and not model_keys and any(key in outside for key in mapped):
            why = f'outside the part being loaded ({", ".join(scope)})'
        if not why and not model_keys:
            why = next((unused[module] for module in (key.partition('.')[0] for key in mapped)
                        if module in unused), None)
        if why:
            report.ignored.append((checkpoint_key, why))
            continue
        if not model_keys:
            report.unexpected.append(checkpoint_key)
        for model_key in model_keys:
            candidates[model_key].append((checkpoint_key, value))
    return candidates


def plan_assignments(targets: Mapping[str, torch.Tensor],
                     candidates: Mapping[str, List[Tuple[str, torch.Tensor]]],
                     kind: CheckpointKind,
                     report: LoadReport) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """``(model tensor, new value)`` pairs; fills every section of ``report`` on the way."""
    assignments, unfilled = [], []
    for keys in shared_groups(targets):
        target = targets[keys[0]]
        fitted, mismatched = [], False
        for model_key in keys:
            for checkpoint_key, value in candidates.get(model_key, []):
                new_value, how = fit_to_model(model_key, value, target)
                if new_value is None:
                    mismatched = True
                    if all(m.checkpoint_key != checkpoint_key for m in report.mismatched):
                        report.mismatched.append(Mismatched(
                            model_key, checkpoint_key, tuple(value.shape), tuple(target.shape)))
                    continue
                fitted.append((checkpoint_key, value, new_value, how))
        if not fitted:
            if not mismatched:
                unfilled.append(keys)
            continue
        kept_key, kept_raw, kept, how = fitted[0]
        differing = sorted({key for key, _, other, _ in fitted[1:] if not torch.equal(other, kept)})
        if differing:
            report.disagreeing.append(Disagreement(kept_key, differing))
        if how:
            report.reshaped.append(Reshaped(keys[0], tuple(kept_raw.shape),
                                            tuple(target.shape), how))
        assignments.append((target, kept))
        report.loaded.append(keys[0])

    sections = {'missing': report.missing, 'new': report.newly_initialised,
                'outside': report.not_in_source}
    for keys in unfilled:  # momentum copies start equal to the online weights, as in BLIP
        online_key = key_maps.momentum_source(keys[0])
        if online_key in targets:
            assignments.append((targets[keys[0]], targets[online_key]))  # after its own load
            report.copied.append((keys[0], online_key))
        else:
            sections[kind.absent(keys[0])].append(keys[0])
    return assignments


# ---------------------------------------------------------------- public API
def load_checkpoint(model: nn.Module, source: Source, *, kind: Optional[str] = None,
                    scope: Optional[Sequence[str]] = None, image_size: Optional[int] = None,
                    strict: bool = False) -> LoadReport:
    """Load an official BLIP, Hugging Face BLIP, BERT or timm ViT checkpoint into a BLIP ``model``.

    Args:
        model: a :class:`~backbones.blip.Blip` (any heads and sharing policy) or a
            :class:`~backbones.blip_vqa.BlipVQA`. A model's ``unused_checkpoint_modules``
            (module -> why) names checkpoint parts it has no place for by design; their
            keys are reported as dropped on purpose, not as unexpected.
        source: an official ``.pth`` (``{'model': state_dict}`` or a bare state dict), a
            ``.safetensors``/``.bin`` file, a Hugging Face ``save_pretrained`` directory
            (BLIP or BERT, sharded or not), or an in-memory state dict.
        kind: a key of :data:`KINDS`; default: told from the keys (a timm ViT cannot be).
        scope: top-level modules to load (e.g. ``('visual_encoder',)``; their momentum
            copies follow); checkpoint keys of other modules are dropped and reported.
        image_size: if given, the model's ViTs are first switched to this resolution.
        strict: raise :class:`CheckpointError` (before changing any weight or setting) when
            anything is missing, unexpected, mismatched or disagreeing, or when a Hugging
            Face ``config.json`` says the model's LayerNorm eps differs from the checkpoint's
            (without ``strict`` the loader sets the checkpoint's eps and reports it).

    Returns:
        The :class:`LoadReport`; print it to see every key that did not load as is.
    """
    register_mmengine_safe_globals()  # our own mmengine checkpoints hold numpy scalars
    state, where, config = read_checkpoint(source)
    kind_name = kind or detect_kind(state, where)
    if kind_name not in KINDS:
        raise ValueError(f'unknown checkpoint kind {kind_name!r}; choose one of {sorted(KINDS)}')
    report = LoadReport(source=where, kind=KINDS[kind_name].title)
    if image_size is not None:
        resize_image_encoders(model, image_size, report)
    if config is not None:
        report.notes += config_notes(kind_name, config, model)
        report.changed += setting_changes(kind_name, config, model, scope)
    else:
        report.notes += missing_config_notes(kind_name, where)
    every_key = model.state_dict(keep_vars=True)
    targets = {key: tensor for key, tensor in every_key.items() if _in_scope(key, scope)}
    outside = {key: tensor for key, tensor in every_key.items() if key not in targets}
    candidates = collect_candidates(state, KINDS[kind_name], targets, report, outside,
                                    scope or (), getattr(model, 'unused_checkpoint_modules', {}))
    assignments = plan_assignments(targets, candidates, KINDS[kind_name], report)
    report.not_in_source += [keys[0] for keys in shared_groups(outside)]
    if strict and (report.has_problems or report.changed):
        raise CheckpointError(f'strict loading failed, the model is unchanged:\n{report}')
    for change in report.changed:
        change.apply(model)
    with torch.no_grad():
        for target, value in assignments:
            target.copy_(value.to(target.dtype))
    return report


def _in_scope(model_key: str, scope: Optional[Sequence[str]]) -> bool:
    return scope is None or key_maps.online_module(model_key.partition('.')[0]) in scope


@FUNCTIONS.register_module(name='load_weights')
def load_weights(model: nn.Module, checkpoint: Source, logger=None) -> LoadReport:
    """:func:`load_checkpoint` with its report logged (``logger.info``, else printed).

    Registered as ``FUNCTIONS['load_weights']``: the harness's stages load weights
    through it without importing this package.
    """
    report = load_checkpoint(model, checkpoint)
    (logger.info if logger else print)(f'loaded {report.source}:\n{report}')
    return report


# Parts of a BLIP that evaluation never reads: the momentum encoders and projections
# (``*_m``, training targets only), the ITC feature queues, and the ITC temperature (it
# scales training logits; retrieval ranks by cosine and ITM scores).
TRAINING_ONLY_MODULES = ('queue', 'temp')


def needed_for_evaluation(model_key: str) -> bool:
    """Whether evaluating the model reads ``model_key`` (momentum copies, queues and the
    ITC temperature it does not)."""
    module = model_key.partition('.')[0]
    return not module.endswith('_m') and module not in TRAINING_ONLY_MODULES


def evaluation_coverage(model: nn.Module, report: LoadReport, strict: bool) -> dict:
    """The load coverage of an evaluation, as results records keep it.

    ``expected`` counts the model tensors evaluation reads (one per shared tensor, see
    :func:`needed_for_evaluation`), ``loaded`` those set from the checkpoint (as they were,
    or fitted in a known way: position-embedding interpolation, size-1 dimensions, added
    vocabulary rows); ``not_loaded`` names the others (missing, mismatched, never in this
    kind of checkpoint), the first :data:`LISTED_PER_SECTION` of them, and
    ``not_loaded_modules`` counts them per module.
    """
    needed = [keys[0] for keys in shared_groups(model.state_dict(keep_vars=True))
              if needed_for_evaluation(keys[0])]
    loaded = set(report.loaded)
    not_loaded = [key for key in needed if key not in loaded]
    coverage = dict(loaded=len(needed) - len(not_loaded), expected=len(needed), strict=strict,
                    source=report.source, kind=report.kind)
    if not_loaded:
        coverage['not_loaded'] = not_loaded[:LISTED_PER_SECTION]
        coverage['not_loaded_modules'] = _summarise_modules(not_loaded)
    return coverage


@FUNCTIONS.register_module(name='load_for_evaluation')
def load_for_evaluation(model: nn.Module, checkpoint: Source, *, strict: bool = True,
                        image_size: Optional[int] = None, logger=None) -> dict:
    """Load ``checkpoint`` into ``model`` for evaluation; return its coverage for the record.

    ``strict`` (the default) refuses a checkpoint that leaves any tensor evaluation reads
    unloaded (missing, mismatched, or a part this kind of checkpoint never holds) or whose
    copies of a shared tensor disagree: such a model would be scored with random weights.
    Checkpoint keys the model has no place for (e.g. a pre-trained checkpoint's ITM head
    when captioning) are reported, not refused. ``image_size`` (if given) switches the
    model's ViTs to that resolution first. Registered as
    ``FUNCTIONS['load_for_evaluation']`` for the harness's evaluation stage.

    Returns:
        :func:`evaluation_coverage`'s dict (``loaded``, ``expected``, ``strict``,
        ``source``, ``kind``, ``not_loaded`` when some are).
    """
    report = load_checkpoint(model, checkpoint, image_size=image_size)
    (logger.info if logger else print)(f'loaded {report.source}:\n{report}')
    coverage = evaluation_coverage(model, report, strict)
    gaps = coverage.get('not_loaded', []) or report.disagreeing
    if strict and gaps:
        unloaded = coverage['expected'] - coverage['loaded']
        raise CheckpointError(
            f'refused to evaluate {report.source}: {unloaded} of the {coverage["expected"]} '
            f'tensors the model needs were not loaded from it'
            f'{" (" + coverage["not_loaded_modules"] + ")" if unloaded else ""}'
            f'{" and shared copies disagree" if report.disagreeing else ""}, so it would be '
            f'scored with random weights there (first: {", ".join(map(str, gaps[:5]))}).\n'
            f'{report}\nFix: build the model from the checkpoint itself '
            f"(model=dict(type='BlipFromCheckpoint', checkpoint=...)), or make the model "
            f"config's heads and shapes match it; to score it anyway, give the evaluation "
            f'stage strict=False (its board row is then marked "not strict").')
    return coverage


def official_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The model's state dict under official BLIP's key names (queues at top level)."""
    state = {key_maps.model_to_official(key): tensor
             for key, tensor in model.state_dict().items()}
    for alias, canonical in key_maps.TIED_ALIASES.items():
        for key in [k for k in state if k.endswith(canonical)]:
            state[key[:-len(canonical)] + alias] = state[key]
    return state


def save_official_checkpoint(model: nn.Module, path: Union[str, Path]):
    """Write ``{'model': state_dict}`` in official BLIP's layout (loadable by both loaders)."""
    torch.save({'model': official_state_dict(model)}, Path(path))


def load_timm_vision_checkpoint(model: nn.Module, source: Source, *,
                                strict: bool = False) -> LoadReport:
    """Initialise ``model.visual_encoder`` (and its momentum copy) from a timm / DeiT ViT file.

    timm's key names are BLIP's ``visual_encoder.*`` names without the prefix; the ImageNet
    classifier (``head.*``, ``fc_norm.*``) is dropped and reported, ``pos_embed`` is
    interpolated to the model's resolution, and the rest of the model is left as it was.
    """
    return load_checkpoint(model, source, kind='timm', scope=('visual_encoder',), strict=strict)
