"""Registries of the harness, children of mmengine's root registries.

Every pluggable piece (models, datasets, transforms, metrics, loops, hooks, tokenizers,
experiment stages, task evaluators, paper tables) is registered here under the ``harness``
scope. This module sits at the bottom of the import graph: it imports no plugin. Its
``locations`` name the plugin modules by string; mmengine imports them the first time a
registry is asked for a name, so a config's ``type='...'`` resolves without manual imports.

The plugin modules are found on disk: every module and sub-package of ``backbones/`` and
``tasks/`` (a new backbone file or task folder registers itself by existing), plus the
harness's own stage and hook modules. Plugins outside the tree are imported with
mmengine's ``custom_imports = dict(imports=['my_pkg.my_module'])`` in a config.
"""
import importlib.util
import pkgutil
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


def plugin_modules(package: str) -> list[str]:
    """Dotted names of the public modules and sub-packages directly inside ``package``.

    Found from the package's folder without importing it, so listing them costs nothing.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(f'{package}.{info.name}'
                  for info in pkgutil.iter_modules(spec.submodule_search_locations)
                  if not info.name.startswith('_'))


_MODEL_PACKAGES = plugin_modules('backbones')
_TASK_PACKAGES = plugin_modules('tasks')
_HARNESS_PACKAGES = ['harness.hooks', 'harness.stages', 'harness.safe_load']

RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, locations=_HARNESS_PACKAGES)
MODELS = Registry('model', parent=MMENGINE_MODELS, locations=_MODEL_PACKAGES)
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS)
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, locations=_TASK_PACKAGES)
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS,
                         locations=_TASK_PACKAGES)
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, locations=_TASK_PACKAGES)
FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS,
                     locations=_MODEL_PACKAGES + _TASK_PACKAGES)
METRICS = Registry('metric', parent=MMENGINE_METRICS, locations=_TASK_PACKAGES)
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, locations=_TASK_PACKAGES)
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=_MODEL_PACKAGES + _TASK_PACKAGES)
HOOKS = Registry('hook', parent=MMENGINE_HOOKS,
                 locations=_HARNESS_PACKAGES + _MODEL_PACKAGES + _TASK_PACKAGES)
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
# Task evaluators (``harness.core.task_result.TaskEvaluator``): ``TASKS.get('retrieval')(
# model, dataset, device=..., work_dir=..., cache_key=..., **options) -> TaskResult``.
TASKS = Registry('task', scope='harness', locations=_TASK_PACKAGES)
# Functions returning the paper's reference tables (``harness.core.paper.PaperTable``),
# registered by the task folder whose protocol measured them; boards name them by
# ``paper_reference``.
PAPER_TABLES = Registry('paper table', scope='harness', locations=_TASK_PACKAGES)
# Data roots that the harness generates instead of reading (ToyWorld): a callable
# ``(spec: dict, root=None) -> pathlib.Path`` that makes (or finds) the root for a config
# whose ``data_root`` is the source's name (spec: the config's value of that name; root: its
# ``<name>_dir``, when set).
DATA_SOURCES = Registry('data source', scope='harness', locations=_TASK_PACKAGES)

__all__ = [
    'RUNNERS',
    'MODELS',
    'MODEL_WRAPPERS',
    'DATASETS',
    'DATA_SAMPLERS',
    'TRANSFORMS',
    'FUNCTIONS',
    'METRICS',
    'EVALUATOR',
    'LOOPS',
    'HOOKS',
    'OPTIMIZERS',
    'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS',
    'VISUALIZERS',
    'LOG_PROCESSORS',
    'TOKENIZERS',
    'STAGES',
    'TASKS',
    'PAPER_TABLES',
    'DATA_SOURCES',
    'plugin_modules',
]
