"""CompileLayersHook / Blip.compile_layers: every transformer layer compiled in place, the
checkpoint layout untouched (compiling itself happens lazily, at the first call)."""
import types

import pytest
from timm.models.vision_transformer import Block

from backbones.med import MedLayer
from benchmarks.models import our_blip
from harness.hooks import CompileLayersHook


def test_every_vit_block_and_med_layer_is_compiled_and_the_state_dict_keeps_its_keys():
    model = our_blip()
    layers = [m for m in model.modules() if isinstance(m, (Block, MedLayer))]
    keys = list(model.state_dict())
    assert model.compile_layers(dynamic=True) == len(layers) > 0
    assert all(layer._compiled_call_impl is not None for layer in layers)
    others = [m for m in model.modules() if not isinstance(m, (Block, MedLayer))]
    assert all(getattr(m, '_compiled_call_impl', None) is None for m in others)
    assert list(model.state_dict()) == keys


def test_the_hook_compiles_the_unwrapped_model_and_names_a_model_without_layers():
    logged = []
    logger = types.SimpleNamespace(info=logged.append)
    model = our_blip()
    CompileLayersHook(mode='default').before_train(types.SimpleNamespace(model=model,
                                                                         logger=logger))
    assert logged and 'compiled' in logged[0]
    with pytest.raises(TypeError, match='has no compile_layers'):
        CompileLayersHook().before_train(types.SimpleNamespace(model=object(), logger=logger))


def test_under_cuda_graphs_the_hook_marks_every_iteration(monkeypatch):
    marks = []
    monkeypatch.setattr('torch.compiler.cudagraph_mark_step_begin', lambda: marks.append(1))
    for mode, expected in (('default', 0), ('reduce-overhead', 2)):
        marks.clear()
        hook = CompileLayersHook(mode=mode)
        for index in range(2):
            hook.before_train_iter(runner=None, batch_idx=index)
        assert len(marks) == expected


def test_cuda_graphs_are_refused_where_the_runner_also_validates():
    runner = types.SimpleNamespace(model=our_blip(), _val_loop=dict(type='RetrievalValLoop'),
                                   logger=types.SimpleNamespace(info=print))
    with pytest.raises(ValueError, match="use mode='default' in this stage"):
        CompileLayersHook(mode='reduce-overhead').before_train(runner)
    CompileLayersHook(mode='default').before_train(runner)  # fused kernels only: allowed
