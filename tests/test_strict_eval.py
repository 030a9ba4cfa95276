"""Strict loading for evaluation: no silent reshape, no random weights scored, coverage recorded."""
import pytest
import torch
from hf_builders import randomize_, tiny_blip

from backbones.checkpoint import (CheckpointError, evaluation_coverage, load_checkpoint,
                                  load_for_evaluation, needed_for_evaluation, official_state_dict)
from harness.boards.markdown import describe_load, render_leaderboard
from harness.results import ResultRecord


@pytest.fixture(scope='module')
def official_state():
    """A random tiny full model's state dict in official layout (copy before editing)."""
    return official_state_dict(randomize_(tiny_blip(), seed=3))


def test_a_transposed_projection_is_a_mismatch_not_a_reshape(official_state):
    state = dict(official_state)
    state['vision_proj.weight'] = state['vision_proj.weight'].T.contiguous()  # [96, 256]
    model = tiny_blip()
    before = model.vision_proj.weight.clone()
    with pytest.raises(CheckpointError, match='vision_proj.weight'):
        load_checkpoint(model, state, strict=True)

    report = load_checkpoint(model, state)
    assert not report.reshaped
    assert [(m.key, m.checkpoint_shape) for m in report.mismatched] == \
        [('vision_proj.weight', (96, 256))]
    assert torch.equal(model.vision_proj.weight, before)  # not loaded scrambled


def test_size_one_dimensions_are_a_known_reshape(official_state):
    state = dict(official_state)
    state['visual_encoder.cls_token'] = state['visual_encoder.cls_token'].flatten()
    model = tiny_blip()
    [reshaped] = load_checkpoint(model, state, strict=True).reshaped
    assert reshaped.key == 'visual_encoder.cls_token' and 'size-1' in reshaped.how
    assert torch.equal(model.visual_encoder.cls_token.flatten(), state['visual_encoder.cls_token'])


def test_momentum_queues_and_temperature_are_not_needed_for_evaluation(official_state):
    assert not needed_for_evaluation('visual_encoder_m.pos_embed')
    assert not needed_for_evaluation('queue.image_queue') and not needed_for_evaluation('temp')
    assert needed_for_evaluation('text_decoder.cls.predictions.bias')
    state = {key: value for key, value in official_state.items()
             if not key.partition('.')[0].endswith('_m') and 'queue' not in key and key != 'temp'}
    model = tiny_blip()
    coverage = load_for_evaluation(model, state, strict=True)
    assert coverage['loaded'] == coverage['expected'] > 0 and coverage['strict']
    # a strict load_checkpoint would call the official queues missing; evaluation does not
    with pytest.raises(CheckpointError, match='image_queue'):
        load_checkpoint(tiny_blip(), state, strict=True)


def test_evaluation_refuses_missing_and_mismatched_weights_and_names_them(official_state):
    state = {key: value for key, value in official_state.items()
             if not key.startswith('text_decoder.')}  # a retrieval checkpoint ...
    state['vision_proj.weight'] = state['vision_proj.weight'].T.contiguous()
    model = tiny_blip()  # ... evaluated by a model with a caption decoder
    with pytest.raises(CheckpointError) as raised:
        load_for_evaluation(model, state)
    message = str(raised.value)
    assert 'text_decoder.bert.encoder.layer.0.attention.self.query.weight' in message
    assert 'vision_proj.weight' in message
    assert 'strict=False' in message and 'BlipFromCheckpoint' in message

    coverage = load_for_evaluation(tiny_blip(), state, strict=False)
    assert not coverage['strict'] and 0 < coverage['loaded'] < coverage['expected']
    assert coverage['expected'] - coverage['loaded'] == 25 + 1  # decoder SA + LM head, proj
    assert coverage['not_loaded'][0] == \
        'text_decoder.bert.encoder.layer.0.attention.self.query.weight'


def test_coverage_counts_shared_tensors_once():
    model = tiny_blip(losses=('lm',))
    report = load_checkpoint(model, official_state_dict(model))
    coverage = evaluation_coverage(model, report, strict=True)
    unique = {id(t) for t in model.state_dict(keep_vars=True).values()}
    assert coverage['expected'] == coverage['loaded'] == len(unique)


def board(loads):
    records = [ResultRecord(experiment='e', variant=variant, task='caption', dataset='coco',
                            split='test', metrics={'CIDEr': 1.0}, params=10,
                            extra={'load': load})
               for variant, load in loads.items()]
    return render_leaderboard('e', records, None)


def test_boards_show_load_coverage_and_mark_non_strict_rows():
    assert describe_load(dict(loaded=471, expected=471, strict=True)) == '471/471'
    text = board({'hf': dict(loaded=471, expected=471, strict=True, source='/m'),
                  'partial': dict(loaded=1, expected=471, strict=False, source='/p')})
    assert '| Weights loaded |' in text
    assert '| 471/471 |' in text and '1/471 **not strict**' in text
    assert 'strict=False' in text
    assert 'not strict' not in board({'hf': dict(loaded=3, expected=3, strict=True)})
