"""A Hugging Face BLIP checkpoint brings its LayerNorm eps: the loader sets it (or names the fix).

Hugging Face's ``BlipVisionConfig.layer_norm_eps`` defaults to 1e-5 where official BLIP's ViT
(timm) uses 1e-6; the text side's eps is ``text_config.layer_norm_eps``. A model built with
other values gives slightly different outputs from the same weights, so the loader reads
``config.json`` and sets every LayerNorm's eps to the checkpoint's.
"""
import pytest
import torch
from hf_builders import TINY_IMAGE_SIZE, tiny_blip
from torch import nn
from transformers import BlipForImageTextRetrieval

from backbones.checkpoint import CheckpointError, load_checkpoint
from benchmarks.models import hf_blip_config, randomize_

HF_VISION_EPS = 1e-5  # transformers' BlipVisionConfig default (official BLIP: 1e-6)
HF_TEXT_EPS = 1e-6  # differs from MED's 1e-12 (bert-base-uncased's)
STD = 0.01  # small weights: small LayerNorm input variance, so eps visibly matters


def layer_norm_eps(module: nn.Module) -> set:
    return {sub.eps for sub in module.modules() if isinstance(sub, nn.LayerNorm)}


@pytest.fixture(scope='module')
def hf_checkpoint(tmp_path_factory):
    """``(HF model, its save_pretrained directory)``; vision and text eps differ from ours."""
    config = hf_blip_config(vision_layer_norm_eps=HF_VISION_EPS)
    config.text_config.layer_norm_eps = HF_TEXT_EPS
    hf_model = randomize_(BlipForImageTextRetrieval(config), seed=7, std=STD).eval()
    directory = tmp_path_factory.mktemp('hf_blip')
    hf_model.save_pretrained(directory)
    return hf_model, directory


def outputs(model, hf_model):
    """``(ours, HF's)`` vision tokens and text hidden states of the same inputs."""
    pixels = torch.randn(2, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE,
                         generator=torch.Generator().manual_seed(0))
    tokens = model.tokenize(['a red circle above a blue square', 'a cat'])
    ids, mask = tokens['input_ids'], tokens['attention_mask']
    ours = (model.visual_encoder(pixels), model.text_encoder(ids, mask, mode='text'))
    theirs = (hf_model.vision_model(pixel_values=pixels).last_hidden_state,
              hf_model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state)
    return ours, theirs, mask.bool()


@torch.no_grad()
def test_loader_sets_the_checkpoints_layer_norm_eps(hf_checkpoint):
    hf_model, directory = hf_checkpoint
    model = tiny_blip(losses=('itc', 'itm'))  # official eps: 1e-6 vision, 1e-12 text
    report = load_checkpoint(model, directory)

    assert not report.has_problems
    vision, text = report.changed
    assert (vision.config_field, vision.model_value, vision.checkpoint_value) == \
        ('vision_config.layer_norm_eps', 1e-6, HF_VISION_EPS)
    assert vision.modules == ('visual_encoder', 'visual_encoder_m')
    assert (text.config_field, text.model_value, text.checkpoint_value) == \
        ('text_config.layer_norm_eps', 1e-12, HF_TEXT_EPS)
    assert 'vision=dict(layer_norm_eps=1e-05)' in str(report)
    for name in ('visual_encoder', 'visual_encoder_m'):
        assert layer_norm_eps(getattr(model, name)) == {HF_VISION_EPS}
    for name in ('text_encoder', 'text_encoder_m'):
        assert layer_norm_eps(getattr(model, name)) == {HF_TEXT_EPS}
    assert model.med_config.layer_norm_eps == HF_TEXT_EPS

    (image, text), (hf_image, hf_text), valid = outputs(model, hf_model)
    torch.testing.assert_close(image, hf_image, atol=1e-6, rtol=0)
    torch.testing.assert_close(text[valid], hf_text[valid], atol=1e-6, rtol=0)


@torch.no_grad()
def test_same_weights_without_the_eps_fix_differ_measurably(hf_checkpoint):
    """The same weights from a bare state dict (no config.json): eps stays ours, outputs drift."""
    hf_model, _ = hf_checkpoint
    model = tiny_blip(losses=('itc', 'itm'))
    report = load_checkpoint(model, hf_model.state_dict())
    assert not report.changed and layer_norm_eps(model.visual_encoder) == {1e-6}

    (image, text), (hf_image, hf_text), valid = outputs(model, hf_model)
    assert (image - hf_image).abs().max() > 1e-3  # 0.024 here; under 1e-6 with the fix
    assert (text[valid] - hf_text[valid]).abs().max() > 2e-5  # 1.4e-4 here


def test_strict_loading_refuses_other_eps_and_names_the_fix(hf_checkpoint):
    _, directory = hf_checkpoint
    model = tiny_blip(losses=('itc', 'itm'))
    before = model.visual_encoder.blocks[0].attn.qkv.weight.clone()
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(model, directory, strict=True)
    message = str(raised.value)
    assert 'vision=dict(layer_norm_eps=1e-05)' in message
    assert 'text_overrides=dict(layer_norm_eps=1e-06)' in message
    assert layer_norm_eps(model.visual_encoder) == {1e-6}  # unchanged: settings and weights
    assert torch.equal(model.visual_encoder.blocks[0].attn.qkv.weight, before)

    matching = tiny_blip(losses=('itc', 'itm'), vision_layer_norm_eps=HF_VISION_EPS,
                         text_overrides=dict(layer_norm_eps=HF_TEXT_EPS))
    assert not load_checkpoint(matching, directory, strict=True).changed
