"""Registries of the harness, children of mmengine's root registries.

Every pluggable piece (models, datasets, transforms, metrics, loops, hooks, tokenizers,
experiment stages) is registered here under the ``harness`` scope. ``locations`` lists the
packages whose import registers the pieces, so a config's ``type='...'`` string resolves
without any manual import.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

_MODEL_PACKAGES = ['backbones']
_TASK_PACKAGES = ['tasks']
_HARNESS_PACKAGES = ['harness.hooks', 'harness.stages', 'harness.capfilt_stages']

RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, locations=_HARNESS_PACKAGES)
MODELS = Registry('model', parent=MMENGINE_MODELS, locations=_MODEL_PACKAGES)
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS)
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, locations=_TASK_PACKAGES)
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS)
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, locations=_TASK_PACKAGES)
FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS, locations=_TASK_PACKAGES)
METRICS = Registry('metric', parent=MMENGINE_METRICS, locations=_TASK_PACKAGES)
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, locations=_TASK_PACKAGES)
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=_TASK_PACKAGES)
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=_HARNESS_PACKAGES + _MODEL_PACKAGES)
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS)
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS)
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS)
LOG_PROCESSORS = Registry('log processor', parent=MMENGINE_LOG_PROCESSORS)

# Registries of our own (no mmengine parent).
TOKENIZERS = Registry('tokenizer', scope='harness', locations=_MODEL_PACKAGES)
STAGES = Registry('stage', scope='harness', locations=_HARNESS_PACKAGES + _TASK_PACKAGES)
# Task evaluators: ``TASKS.get('retrieval')(model, dataset, **options) -> metrics``.
TASKS = Registry('task', scope='harness', locations=_TASK_PACKAGES)
