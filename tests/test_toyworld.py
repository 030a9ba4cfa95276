"""ToyWorld generation: determinism, caching, formats, and reading it back with the readers."""
import json
from collections import Counter

import decord
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO
from torch.utils.data import DataLoader
from transformers import BertTokenizer

from tasks.datasets import (CaptionEvalDataset, GQADataset, ImageTextPairDataset,
                            RetrievalEvalDataset, VideoQADataset, VideoRetrievalDataset,
                            VQADataset, vqa_train_collate)
from tasks.text import pre_caption, pre_question
from tasks.toyworld import ToyWorldSpec, default_root, ensure_toyworld
from tasks.toyworld.__main__ import main as toyworld_cli
from tasks.transforms import build_image_transform

SPEC = ToyWorldSpec.tiny()
IMAGE_SIZE = 32


def _load(root, relative):
    return json.loads((root / relative).read_text())


def _file_bytes(root, pattern='**/*'):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.glob(pattern)) if p.is_file()}


# --- generation: determinism and caching ---------------------------------------------------

def test_same_seed_gives_byte_identical_files(tiny_toyworld, tmp_path):
    again = ensure_toyworld(ToyWorldSpec.tiny(), tmp_path / 'again')
    first, second = _file_bytes(tiny_toyworld), _file_bytes(again)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []


def test_other_seed_gives_other_data(tiny_toyworld, tmp_path):
    toyworld_cli(['--root', str(tmp_path / 'seed1'), '--tiny', '--seed', '1'])
    other = tmp_path / 'seed1'
    for name in ('annotations/coco_karpathy_train.json', 'annotations/pretrain_web.json',
                 'vqa/v2_mscoco_train_annotations.json', 'msrvtt/msrvtt_test.jsonl'):
        assert (other / name).read_bytes() != (tiny_toyworld / name).read_bytes(), name


def test_cache_is_reused_and_regenerated_on_spec_change(tmp_path):
    root = tmp_path / 'cached'
    assert ensure_toyworld(SPEC, root) == root.resolve()
    done_time = (root / 'DONE').stat().st_mtime_ns
    ensure_toyworld(SPEC, root)
    assert (root / 'DONE').stat().st_mtime_ns == done_time
    changed = ToyWorldSpec.tiny(seed=5)
    ensure_toyworld(changed, root)
    assert _load(root, 'toyworld_spec.json')['seed'] == 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # no temp leftovers


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / 'precious.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match='not a ToyWorld'):
        ensure_toyworld(SPEC, tmp_path)
    assert (tmp_path / 'precious.txt').exists()


def test_default_root_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    assert default_root(SPEC) == tmp_path / 'blip_harness' / 'toyworld' / SPEC.digest()
    assert default_root(SPEC) != default_root(ToyWorldSpec.tiny(seed=1))


# --- file formats ----------------------------------------------------------------------------

def test_karpathy_files_and_coco_ground_truth(tiny_toyworld):
    train = _load(tiny_toyworld, 'annotations/coco_karpathy_train.json')
    assert len(train) == SPEC.n_train * SPEC.captions_per_image
    assert all(r['image_id'].startswith('coco_') for r in train)
    for split, count in (('val', SPEC.n_val), ('test', SPEC.n_test)):
        records = _load(tiny_toyworld, f'annotations/coco_karpathy_{split}.json')
        assert len(records) == count
        assert all(len(set(r['caption'])) == SPEC.captions_per_image for r in records)
        coco = COCO(str(tiny_toyworld / f'annotations/coco_karpathy_{split}_gt.json'))
        assert len(coco.getImgIds()) == count
        assert len(coco.getAnnIds()) == count * SPEC.captions_per_image
        ids_from_names = {int(r['image'].rsplit('_', 1)[-1].split('.')[0]) for r in records}
        assert ids_from_names == set(coco.getImgIds())


def test_captions_vary(tiny_toyworld):
    captions = [c for r in _load(tiny_toyworld, 'annotations/coco_karpathy_val.json')
                for c in r['caption']]
    openings = Counter(' '.join(pre_caption(c).split()[:2]) for c in captions)
    assert len(openings) >= 8  # many phrasings, not one template


def test_web_noise_fraction_and_labels(tiny_toyworld):
    web = _load(tiny_toyworld, 'annotations/pretrain_web.json')
    labels = _load(tiny_toyworld, 'annotations/pretrain_web_noise_labels.json')
    assert len(web) == len(labels) == SPEC.n_web
    assert [(r['image'], r['caption']) for r in web] == \
           [(r['image'], r['caption']) for r in labels]
    counts = Counter(r['label'] for r in labels)
    assert set(counts) == {'clean', 'mismatched', 'attribute_swap', 'generic'}
    noisy = SPEC.n_web - counts['clean']
    assert abs(noisy / SPEC.n_web - SPEC.web_noise_fraction) <= 1 / SPEC.n_web
    human = _load(tiny_toyworld, 'annotations/pretrain_human.json')
    assert len(human) == SPEC.n_train * SPEC.captions_per_image


def test_vqa_files_have_ten_disagreeing_answers(tiny_toyworld):
    annotations = _load(tiny_toyworld, 'vqa/v2_mscoco_train_annotations.json')['annotations']
    questions = _load(tiny_toyworld, 'vqa/v2_OpenEnded_mscoco_train_questions.json')
    assert len(annotations) == len(questions['questions']) > 0
    answer_list = set(_load(tiny_toyworld, 'annotations/answer_list.json'))
    for annotation in annotations:
        answers = [a['answer'] for a in annotation['answers']]
        assert len(answers) == 10
        assert Counter(answers).most_common(1)[0][0] == annotation['multiple_choice_answer']
        assert set(answers) <= answer_list
    assert any(len(set(a['answer'] for a in ann['answers'])) > 1 for ann in annotations)
    blip_train = _load(tiny_toyworld, 'annotations/vqa_train.json')
    assert {r['question_id'] for r in blip_train} == {a['question_id'] for a in annotations}


def test_vocabulary_tokenises_every_text_without_unknowns(tiny_toyworld):
    vocab_file = tiny_toyworld / 'vocab' / 'vocab.txt'
    assert vocab_file.read_text().splitlines()[:5] == ['[PAD]', '[UNK]', '[CLS]', '[SEP]',
                                                       '[MASK]']
    tokenizer = BertTokenizer(str(vocab_file))
    assert tokenizer.vocab_size == len(vocab_file.read_text().splitlines())
    texts = [r['caption'] for r in _load(tiny_toyworld, 'annotations/coco_karpathy_train.json')]
    texts += [r['caption'] for r in _load(tiny_toyworld, 'annotations/pretrain_web.json')]
    texts += [caption for split in ('val', 'test')
              for r in _load(tiny_toyworld, f'annotations/flickr30k_{split}.json')
              for caption in r['caption']]
    texts += [pre_question(q['question']) for q in _load(tiny_toyworld,
                                                         'annotations/vqa_train.json')]
    texts += [q['question'] for name in ('msrvtt_qa_test', 'msrvtt_qa_motion_test')
              for q in _load(tiny_toyworld, f'msrvtt/{name}.json')]
    unknown = tokenizer.unk_token_id
    bad = [t for t in texts if unknown in tokenizer(pre_caption(t))['input_ids']]
    assert bad == []


def test_videos_decode_with_decord(tiny_toyworld):
    lines = (tiny_toyworld / 'msrvtt' / 'msrvtt_test.jsonl').read_text().splitlines()
    assert len(lines) == SPEC.n_videos
    for line in lines:
        clip = tiny_toyworld / 'msrvtt' / 'videos' / f"{json.loads(line)['clip_name']}.mp4"
        reader = decord.VideoReader(str(clip), num_threads=1)
        assert len(reader) >= 16
        assert reader[0].shape == (SPEC.image_size, SPEC.image_size, 3)


# --- readers on ToyWorld --------------------------------------------------------------------

def test_image_text_pairs(tiny_toyworld):
    dataset = ImageTextPairDataset(tiny_toyworld, ['annotations/coco_karpathy_train.json',
                                                   'annotations/pretrain_web.json'],
                                   image_size=IMAGE_SIZE)
    assert len(dataset) == SPEC.n_train * SPEC.captions_per_image + SPEC.n_web
    assert dataset.num_images == SPEC.n_train + SPEC.n_web
    batch = next(iter(DataLoader(dataset, batch_size=SPEC.captions_per_image)))
    assert batch['image'].shape == (SPEC.captions_per_image, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert batch['image_id'].tolist() == [0] * SPEC.captions_per_image  # one image, 5 texts
    assert all(isinstance(t, str) and t == t.lower() for t in batch['text'])


def test_retrieval_and_caption_eval(tiny_toyworld):
    splits = (('coco_karpathy_test', SPEC.n_test), ('flickr30k_test', SPEC.n_flickr_test))
    for name, count in splits:
        dataset = RetrievalEvalDataset(tiny_toyworld, f'annotations/{name}.json',
                                       image_size=IMAGE_SIZE)
        assert len(dataset) == count
        assert len(dataset.texts) == len(dataset.txt2img) == count * SPEC.captions_per_image
        assert all(dataset.txt2img[t] == i for i, texts in enumerate(dataset.img2txt)
                   for t in texts)
        assert dataset[1]['image_index'] == 1
    captions = CaptionEvalDataset(tiny_toyworld, 'annotations/coco_karpathy_val.json',
                                  image_size=IMAGE_SIZE)
    gt_ids = COCO(str(captions.gt_file)).getImgIds()
    assert sorted(captions[i]['image_id'] for i in range(len(captions))) == sorted(gt_ids)


def test_vqa_and_gqa(tiny_toyworld):
    train = VQADataset(tiny_toyworld, ['annotations/vqa_train.json',
                                       'annotations/vqa_val.json'], image_size=IMAGE_SIZE)
    item = train[0]
    assert abs(sum(item['weights']) - 1.0) < 1e-6 and len(item['answers']) == len(item['weights'])
    batch = vqa_train_collate([train[0], train[1]])
    assert batch['weights'].shape[0] == len(batch['answers']) == batch['answer_counts'].sum()
    test = VQADataset(tiny_toyworld, 'annotations/vqa_test.json', split='test',
                      image_size=IMAGE_SIZE, answer_list_file='annotations/answer_list.json')
    assert len(test) == len(_load(tiny_toyworld, 'vqa/v2_mscoco_test_annotations.json')
                            ['annotations'])
    assert set(next(iter(DataLoader(test, batch_size=2)))) == {'image', 'question',
                                                               'question_id'}
    gqa = GQADataset(tiny_toyworld, 'gqa/testdev_balanced_questions.json', image_ext='.png',
                     image_size=IMAGE_SIZE)
    assert len(gqa) == len(_load(tiny_toyworld, 'gqa/testdev_balanced_questions.json'))
    assert set(gqa[0]) == {'image', 'question', 'question_id', 'answer'}


def test_video_readers(tiny_toyworld):
    retrieval = VideoRetrievalDataset(tiny_toyworld, 'msrvtt/msrvtt_test.jsonl',
                                      video_root='msrvtt/videos', num_frames=8,
                                      image_size=IMAGE_SIZE)
    assert len(retrieval) == len(retrieval.texts) == SPEC.n_videos
    assert retrieval[0]['video'].shape == (8, 3, IMAGE_SIZE, IMAGE_SIZE)
    qa = VideoQADataset(tiny_toyworld, 'msrvtt/msrvtt_qa_test.json', video_root='msrvtt/videos',
                        num_frames=4, image_size=IMAGE_SIZE)
    assert len(qa) == len(_load(tiny_toyworld, 'msrvtt/msrvtt_qa_test.json'))
    assert qa[0]['video'].shape == (4, 3, IMAGE_SIZE, IMAGE_SIZE)


def test_a_data_source_name_needs_no_path(monkeypatch, tiny_toyworld):
    asked = []
    monkeypatch.setattr('tasks.toyworld.source.ensure_toyworld',
                        lambda spec, root=None: asked.append((spec, root)) or tiny_toyworld)
    dataset = RetrievalEvalDataset('toyworld', 'annotations/coco_karpathy_val.json')
    assert dataset.data_root == tiny_toyworld
    assert asked == [(ToyWorldSpec(), None)]  # the source's default spec, default folder


# --- text cleaning and image transforms -----------------------------------------------------

def test_text_cleaning_matches_blip():
    assert pre_caption('  A (red) circle:  on a "striped"   background!\n', 4) == \
        'a red circle on'
    assert pre_caption('Two shapes; a star.') == 'two shapes a star'
    assert pre_question('What color is the "star"?  ') == 'what color is the star?'


def test_training_transform_is_reproducible_under_torch_seed(tiny_toyworld):
    image = next((tiny_toyworld / 'images').glob('*.png'))
    transform = build_image_transform(IMAGE_SIZE, train=True)
    outputs = []
    for _ in range(2):
        torch.manual_seed(7)
        outputs.append(torch.stack([transform(Image.open(image).convert('RGB'))
                                    for _ in range(3)]))
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0][0], outputs[0][1])
    evaluation = build_image_transform(IMAGE_SIZE, train=False)(Image.open(image).convert('RGB'))
    assert evaluation.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
