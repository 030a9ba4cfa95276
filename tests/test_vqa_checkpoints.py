"""VQA checkpoints: Hugging Face ``BlipForQuestionAnswering`` directories and official-layout
``.pth`` files build a BlipVQA (``BlipFromCheckpoint``), load strictly and answer as their
source; a pre-training checkpoint initialises a BlipVQA for fine-tuning."""
import json

import pytest
import torch
from hf_builders import MINILM_DIR, built_and_loaded, randomize_, save_blip_tokenizer
from transformers import BlipConfig, BlipForQuestionAnswering

from backbones.blip_vqa import UNUSED_CHECKPOINT_MODULES
from backbones.checkpoint import load_checkpoint, save_official_checkpoint
from harness.core.registry import FUNCTIONS, MODELS

SEP, PAD = 102, 0
# BLIP's VQA decoder reads text-wide question states; a Hugging Face BlipForQuestionAnswering
# sizes it by the ViT's width, so the two widths are equal here (as in BLIP-base).
HF_VISION = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=2,
                 num_attention_heads=4, patch_size=8, image_size=32, layer_norm_eps=1e-5)
HF_TEXT = dict(vocab_size=30524, bos_token_id=30522, pad_token_id=PAD, sep_token_id=SEP,
               hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=256, max_position_embeddings=64, layer_norm_eps=1e-12)
# Questions of one token length (HF has no padding rule of its own to compare with).
QUESTIONS = ['what colour is the square?', 'how many dogs are there?',
             'where is the red ball?', 'is the cat on it?']
ANSWERS = ['yes', 'no', 'two', 'red', 'blue square', 'on the left', 'a cat']


def pixels(count, size=32, seed=0):
    """Random normalised-looking images."""
    return torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(seed))


def save_hf_vqa(directory, seed=0):
    """A random BlipForQuestionAnswering (eos made likelier, so answers end at different
    lengths) saved with its tokenizer."""
    config = BlipConfig(vision_config=HF_VISION, text_config=HF_TEXT)
    hf = randomize_(BlipForQuestionAnswering(config), seed, std=0.1).eval()
    with torch.no_grad():
        hf.text_decoder.cls.predictions.bias[SEP] += 3.0
    hf.save_pretrained(directory)
    save_blip_tokenizer(directory)
    return hf


@pytest.fixture(scope='module')
def hf_pair(tmp_path_factory):
    """``(hf model, our model built and loaded from its directory)``."""
    directory = tmp_path_factory.mktemp('hf_vqa')
    hf = save_hf_vqa(directory)
    model, coverage = built_and_loaded(directory)
    assert coverage['loaded'] == coverage['expected'] and 'not_loaded' not in coverage
    return hf, model


def test_huggingface_vqa_directory_builds_a_blip_vqa(hf_pair):
    hf, model = hf_pair
    assert type(model).__name__ == 'BlipVQA' and model.image_size == 32
    assert model.visual_encoder.norm.eps == 1e-5
    assert model.num_parameters() == sum(p.numel() for p in hf.parameters())
    report = load_checkpoint(model, hf.state_dict())
    assert report.kind == 'Hugging Face BLIP' and not report.has_problems, str(report)


@torch.no_grad()
@pytest.mark.parametrize('num_beams', [1, 3])
def test_generated_answers_match_huggingface(hf_pair, num_beams):
    """Ours (BLIP's all-ones question mask, today's beam rule) = HF's generate, question by
    question (unpadded: the questions have one length)."""
    hf, model = hf_pair
    images = pixels(len(QUESTIONS))
    tokens = model.tokenize(QUESTIONS)
    assert tokens['attention_mask'].all()
    ids = model.with_first_token(tokens['input_ids'], model.tokenizer.enc_token_id)
    expected = hf.generate(input_ids=ids, pixel_values=images,
                           attention_mask=tokens['attention_mask'], num_beams=num_beams,
                           max_length=10, min_length=1)
    states, atts = model.encode_questions(model.encode_image(images), QUESTIONS)
    got = model.generate_answers(states, atts, num_beams=num_beams, length_normalization='hf')
    assert got == model.tokenizer.batch_decode(expected)
    assert len(set(got)) > 1  # the images and questions lead to different answers


@torch.no_grad()
def test_answer_decoder_logits_match_huggingface(hf_pair):
    """Teacher-forced answer logits over question states: the rank path's decoder calls."""
    hf, model = hf_pair
    images = pixels(2)
    states, atts = model.encode_questions(model.encode_image(images), QUESTIONS[:2])
    hf_states = hf.text_encoder(input_ids=model.with_first_token(
        model.tokenize(QUESTIONS[:2])['input_ids'], model.tokenizer.enc_token_id),
        attention_mask=atts, encoder_hidden_states=hf.vision_model(pixel_values=images)[0])[0]
    torch.testing.assert_close(states, hf_states, atol=1e-5, rtol=0)
    answers = model.answer_tokens(['blue square', 'yes'])
    logits = model.text_decoder(answers['input_ids'], answers['attention_mask'],
                                image_embeds=states, image_atts=atts)
    hf_logits = hf.text_decoder(input_ids=answers['input_ids'],
                                attention_mask=answers['attention_mask'],
                                encoder_hidden_states=states, encoder_attention_mask=atts).logits
    torch.testing.assert_close(logits, hf_logits, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- official layout
def our_vqa(image_size=40, seed=3, text_overrides=(('num_attention_heads', 2),)):
    """A random BlipVQA of non-base shapes with 64-wide heads (official shapes tell heads)."""
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='BlipVQA', text_arch='tiny', text_overrides=dict(text_overrides),
        vision=dict(type='BlipViT', arch='custom', patch_size=8, embed_dim=192, depth=2,
                    num_heads=3, image_size=image_size, mlp_ratio=2.0),
        tokenizer=dict(type='BlipTokenizer', vocab=str(MINILM_DIR))))
    return randomize_(model, seed, std=0.1).eval()


@torch.no_grad()
def test_official_layout_round_trip_is_exact(tmp_path):
    source = our_vqa()
    path = tmp_path / 'model_vqa.pth'
    save_official_checkpoint(source, path)
    keys = torch.load(path, weights_only=True)['model'].keys()
    assert {key.split('.')[0] for key in keys} == {'visual_encoder', 'text_encoder',
                                                   'text_decoder'}
    assert any(key.startswith('text_decoder.cls.') for key in keys)

    model, coverage = built_and_loaded(path, bert_dir=str(MINILM_DIR))
    assert type(model).__name__ == 'BlipVQA' and model.image_size == 40
    assert coverage['loaded'] == coverage['expected']
    assert not load_checkpoint(model, path).has_problems
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    images = pixels(len(QUESTIONS), size=40)
    for method, options in (('rank', dict(answer_list=ANSWERS, k=4)), ('generate', {})):
        assert (model.answer(images, QUESTIONS, method=method, **options)
                == source.answer(images, QUESTIONS, method=method, **options))


# ---------------------------------------------------------------- fine-tuning init
PRETRAINED_TEXT = dict(hidden_size=192, num_attention_heads=3)


def pretrained_blip():
    """A random pre-training Blip (ITC+ITM+LM, BLIP's sharing) whose text width equals its
    ViT's, as BLIP-base's (the VQA decoder then takes the pre-trained cross-attention)."""
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='Blip', text_arch='tiny', queue_size=16,
        text_overrides=PRETRAINED_TEXT,
        vision=dict(type='BlipViT', arch='custom', patch_size=8, embed_dim=192, depth=2,
                    num_heads=3, image_size=32, mlp_ratio=2.0),
        tokenizer=dict(type='BlipTokenizer', vocab=str(MINILM_DIR))))
    return randomize_(model, 4).eval()


@pytest.mark.parametrize('layout', ['official', 'mmengine'])
def test_pretraining_checkpoint_initialises_the_vqa_model(tmp_path, layout):
    source = pretrained_blip()
    path = tmp_path / 'pretrain.pth'
    if layout == 'official':
        save_official_checkpoint(source, path)
    else:  # what our training stages save
        torch.save({'meta': {}, 'state_dict': source.state_dict()}, path)
    # The fine-tuning resolution is larger: pos_embed grows.
    model = our_vqa(image_size=48, text_overrides=PRETRAINED_TEXT)
    report = FUNCTIONS.get('load_weights')(model, str(path), None)

    assert not report.has_problems, str(report)
    assert [r.key for r in report.reshaped] == ['visual_encoder.pos_embed']
    dropped = {key.split('.')[0] for key, _ in report.ignored
               if not key.endswith('position_ids')}
    assert dropped and dropped <= set(UNUSED_CHECKPOINT_MODULES) | {
        'image_queue', 'text_queue', 'idx_queue', 'ptr_queue'}
    assert {'vision_proj', 'itm_head', 'text_encoder_m'} <= dropped
    ours = model.state_dict()
    for key, value in source.state_dict().items():
        if key.startswith(('text_encoder.', 'text_decoder.')):
            assert torch.equal(ours[key], value), key
    assert torch.equal(ours['visual_encoder.blocks.1.mlp.fc2.weight'],
                       source.state_dict()['visual_encoder.blocks.1.mlp.fc2.weight'])
    # BLIP shares all but self-attention; the VQA model's copies are its own.
    assert model.text_decoder.bert.encoder.layer[0].crossattention \
        is not model.text_encoder.encoder.layer[0].crossattention


def test_eval_vqa_config_scores_a_huggingface_directory_with_one_argument(run_cli, tmp_path,
                                                                        tiny_toyworld):
    """``configs/eval_vqa_vqav2.py`` + ``checkpoint=DIR``: the model, tokenizer and heads come
    from the directory; only the data's location (ToyWorld's file names) is given besides."""
    directory = tmp_path / 'blip-vqa-tiny'
    save_hf_vqa(directory)
    work = tmp_path / 'work'
    run_cli('configs/eval_vqa_vqav2.py', '--work-dir', str(work), '--limit', '6',
            cfg_options=[f'checkpoint={directory}', f'data_root={tiny_toyworld}',
                         'vqa_test_dataset.question_file='
                         'vqa/v2_OpenEnded_mscoco_test_questions.json',
                         'vqa_test_dataset.annotation_file=vqa/v2_mscoco_test_annotations.json',
                         'vqa_test_dataset.image_root=',
                         'vqa_test_dataset.image_pattern='
                         'images/toyworld_vqa_test_{image_id:06d}.png',
                         'vqa_test_dataset.answer_list_file=annotations/answer_list.json',
                         'vqa_test_dataset.image_size=32'])
    [record] = [json.loads(line) for line in
                (work / 'blip-vqa-tiny' / 'seed_0' / 'results.jsonl').read_text().splitlines()]
    assert record['task'] == 'vqa' and record['extra']['counts'] == {'questions': 6}
    assert 0.0 <= record['metrics']['accuracy'] <= 100.0
    load = record['extra']['load']
    assert load['loaded'] == load['expected'] > 0 and load['strict']
    assert len(json.loads((work / 'blip-vqa-tiny' / 'seed_0' / 'eval_vqa' /
                           'rank_result.json').read_text())) == 6
