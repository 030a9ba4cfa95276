"""Initialising pre-training as BLIP does: the ViT from an ImageNet (timm/DeiT) file, the text
encoder and decoder from a BERT directory, with provenance in the training stage's outputs.

BLIP ``models/blip_pretrain.py``: ``visual_encoder.load_state_dict(deit['model'],
strict=False)`` (the classifier ``head`` is unused), ``BertModel.from_pretrained(
'bert-base-uncased', add_pooling_layer=False)`` for the encoder and
``BertLMHeadModel.from_pretrained('bert-base-uncased')`` for the decoder (token types,
pooler and next-sentence head unused; cross-attention newly initialised), momentum encoders
copied from the online ones (``copy_params``).
"""
import hashlib

import pytest
import timm
import torch
from conftest import TINY_TOYWORLD_CFG
from hf_builders import TINY_IMAGE_SIZE, randomize_, tiny_blip
from transformers import BertConfig, BertForPreTraining

from backbones.blip import MED_SHAPES
from backbones.checkpoint import save_official_checkpoint
from backbones.initial_weights import check_init, initialise_weights
from harness.config import load_config, resolve_config, resolve_references
from harness.core.registry import STAGES
from harness.core.safe_globals import register_mmengine_safe_globals
from harness.core.stage import Manifest, StageContext

TINY_VIT = dict(patch_size=8, embed_dim=96, depth=2, num_heads=3)  # vit_tiny_patch8
BERT_VOCAB = 30522  # the tiny test models' tokenizer: bert-base-uncased's vocabulary


class ListLogger:
    """Collects ``info`` messages."""

    def __init__(self):
        self.messages = []

    def info(self, message):
        self.messages.append(message)


def deit_like_file(directory, image_size=TINY_IMAGE_SIZE):
    """A random timm ViT with an ImageNet classifier, saved as DeiT does: ``{'model': ...}``."""
    vit = timm.models.vision_transformer.VisionTransformer(img_size=image_size, num_classes=10,
                                                           **TINY_VIT)
    state = randomize_(vit, seed=11).state_dict()
    path = directory / 'deit_tiny.pth'
    torch.save({'model': state}, path)
    return path, state


def bert_directory(directory, vocab_size=BERT_VOCAB):
    """A random BERT with the MLM and next-sentence heads, saved as bert-base-uncased is."""
    shape = MED_SHAPES['tiny']
    config = BertConfig(vocab_size=vocab_size, **shape)
    bert = randomize_(BertForPreTraining(config), seed=12).eval()
    path = directory / 'bert'
    bert.save_pretrained(path)
    return path, bert.state_dict()


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@torch.no_grad()
def test_vit_and_bert_files_initialise_the_model_as_in_blip(tmp_path):
    vit_path, vit_state = deit_like_file(tmp_path)
    bert_path, bert_state = bert_directory(tmp_path)
    model = tiny_blip(sharing='all_but_sa')
    logger = ListLogger()
    record = initialise_weights(model, dict(vision=dict(type='timm', path=str(vit_path)),
                                            text=dict(type='bert', path=str(bert_path))), logger)

    ours = model.state_dict()
    for key, value in vit_state.items():
        if key.startswith('head.'):
            continue
        assert torch.equal(ours[f'visual_encoder.{key}'], value), key
        assert torch.equal(ours[f'visual_encoder_m.{key}'], value), key  # copy_params
    for key, value in bert_state.items():
        name = key[len('bert.'):]
        if not key.startswith('bert.') or name.startswith(('pooler.', 'embeddings.token_type')):
            continue
        rows = slice(0, BERT_VOCAB)  # our vocabulary adds [DEC] and [ENC]
        for prefix in ('text_encoder.', 'text_encoder_m.', 'text_decoder.bert.'):
            mine = ours[prefix + name]
            assert torch.equal(mine[rows] if 'word_embeddings' in name else mine, value), key
    for name in ('transform.dense.weight', 'transform.LayerNorm.weight'):
        assert torch.equal(ours[f'text_decoder.cls.predictions.{name}'],
                           bert_state[f'cls.predictions.{name}'])
    # BLIP drops the token types instead of folding them into the positions.
    assert torch.equal(ours['text_encoder.embeddings.position_embeddings.weight'],
                       bert_state['bert.embeddings.position_embeddings.weight'])

    vision_log, text_log = logger.messages
    assert 'head.weight (ImageNet classifier' in vision_log
    for dropped in ('embeddings.token_type_embeddings.weight (token types',
                    'bert.pooler.dense.weight (pooler', 'cls.seq_relationship.weight'):
        assert dropped in text_log
    assert 'crossattention (' in text_log  # newly initialised: BERT has no cross-attention

    assert record['vision']['type'] == 'timm' and record['vision']['path'] == str(vit_path)
    assert record['vision']['sha256'] == {vit_path.name: sha256(vit_path)}
    assert record['text']['sha256'] == {
        'model.safetensors': sha256(bert_path / 'model.safetensors')}
    vision_counts, text_counts = record['vision']['counts'], record['text']['counts']
    assert vision_counts['loaded'] == len([k for k in vit_state if not k.startswith('head.')])
    assert vision_counts['missing'] == vision_counts['unexpected'] == 0
    assert vision_counts['ignored'] == 2  # head.weight, head.bias
    assert text_counts['missing'] == text_counts['unexpected'] == 0
    assert text_counts['ignored'] == 5  # token types, pooler (2), next-sentence head (2)


@torch.no_grad()
def test_blip_vision_part_takes_only_the_image_encoder(tmp_path):
    source = randomize_(tiny_blip(), seed=13)
    path = tmp_path / 'model_base.pth'
    save_official_checkpoint(source, path)
    model = tiny_blip()
    text_before = model.text_encoder.encoder.layer[0].attention.self.query.weight.clone()
    logger = ListLogger()
    record = initialise_weights(model, dict(vision=dict(type='blip', path=str(path))), logger)

    for name in ('visual_encoder', 'visual_encoder_m'):
        for key, value in getattr(source, name).state_dict().items():
            assert torch.equal(getattr(model, name).state_dict()[key], value), key
    assert torch.equal(model.text_encoder.encoder.layer[0].attention.self.query.weight,
                       text_before)
    assert 'text_encoder.embeddings.word_embeddings.weight (outside the part being loaded ' \
           '(visual_encoder))' in logger.messages[0]
    assert record['vision']['counts']['missing'] == record['vision']['counts']['unexpected'] == 0


def test_wrong_file_for_a_part_fails_loudly(tmp_path):
    """Init loads strictly: a BERT directory given as the ViT does not start training."""
    bert_path, _ = bert_directory(tmp_path)
    with pytest.raises(Exception, match='strict loading failed'):
        initialise_weights(tiny_blip(), dict(vision=dict(type='timm', path=str(bert_path))))


def test_random_parts_load_nothing_and_say_so():
    model = tiny_blip()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    record = initialise_weights(model, dict(vision=dict(type='random'), text=dict(type='random')))
    assert record == dict(vision=dict(type='random'), text=dict(type='random'))
    assert all(torch.equal(value, before[key]) for key, value in model.state_dict().items())


def test_required_initialisation_names_the_keys_to_set():
    with pytest.raises(ValueError) as raised:
        check_init(None, required=True, where="stage 'pretrain'")
    message = str(raised.value)
    assert "stage 'pretrain'" in message and 'init.vision, init.text' in message
    assert "type='timm'" in message and "type='bert'" in message and "'random'" in message
    with pytest.raises(ValueError, match=r'init\.text is not set'):
        check_init(dict(vision=dict(type='random')), required=True)
    check_init(dict(vision=dict(type='random'), text=dict(type='random')), required=True)
    with pytest.raises(ValueError, match=r"init\.vision\.type is 'deit'; choose one of"):
        check_init(dict(vision=dict(type='deit', path='x')))
    with pytest.raises(ValueError, match=r"init\.text \(type 'bert'\) needs a path"):
        check_init(dict(text=dict(type='bert')))


def test_train_stage_refuses_to_start_from_random_weights_unless_told():
    with pytest.raises(ValueError, match=r"stage 'pretrain': init_required=True but init\.vision"):
        STAGES.build(dict(type='TrainStage', name='pretrain', init_required=True))
    STAGES.build(dict(type='TrainStage', name='pretrain', init_required=True,
                      init=dict(vision=dict(type='random'), text=dict(type='random'))))
    STAGES.build(dict(type='TrainStage', name='finetune', init_from='pretrain',
                      init_required=True))  # starts from the earlier stage's weights
    with pytest.raises(ValueError, match='not both'):
        STAGES.build(dict(type='TrainStage', name='finetune', init_from='pretrain',
                          init=dict(vision=dict(type='random'))))


def test_train_stage_records_where_its_weights_came_from(tiny_toyworld, tmp_path):
    cfg = resolve_config(load_config('configs/ci_benchmark.py', dict(
        TINY_TOYWORLD_CFG, toyworld_dir=str(tiny_toyworld))))
    vocab_size = len((tiny_toyworld / 'vocab' / 'vocab.txt').read_text().splitlines())
    vit_path, vit_state = deit_like_file(tmp_path, image_size=64)
    bert_path, _ = bert_directory(tmp_path, vocab_size)
    stage_cfg = resolve_references(cfg['experiment']['stages'], cfg)[0]
    stage_cfg['runner']['train_cfg'] = dict(by_epoch=False, max_iters=1)
    stage_cfg['runner']['param_scheduler'] = []
    stage = STAGES.build(dict(stage_cfg, init_required=True, init=dict(
        vision=dict(type='timm', path=str(vit_path)), text=dict(type='bert', path=str(bert_path)))))
    work = tmp_path / 'work'
    ctx = StageContext(experiment='init', variant='all_but_sa', seed=0, cfg=cfg, work_dir=work,
                       manifest=Manifest(work), device='cpu')
    outputs = stage.run(ctx)

    assert outputs['init']['vision']['sha256'] == {vit_path.name: sha256(vit_path)}
    assert outputs['init']['text']['counts']['missing'] == 0
    register_mmengine_safe_globals()
    trained = torch.load(outputs['checkpoint'], weights_only=True)['state_dict']
    # One optimiser step away from the file's weights (a random start would be ~1 away).
    torch.testing.assert_close(trained['visual_encoder.norm.weight'], vit_state['norm.weight'],
                               atol=1e-2, rtol=0)
