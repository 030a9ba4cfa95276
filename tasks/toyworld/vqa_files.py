"""VQAv2-format question/annotation files and BLIP's ``vqa_*.json`` + ``answer_list.json``.

Question ids follow VQAv2's convention ``image_id * 1000 + k``. Besides VQAv2's train and val
files, ToyWorld writes ``v2_mscoco_test_annotations.json`` for its test questions (real
test-dev answers are private) so the test split can be scored locally.
"""
import pathlib

from .annotators import annotate, possible_answers
from .images import ImageRecord
from .jsonio import write_json
from .questions import Question, sample_questions
from .spec import ToyWorldSpec, random_stream

VQA_FOLDER = 'vqa'
QUESTION_TYPES = ('what color is the', 'what shape is the', 'what shape is', 'how many',
                  'is there a', 'is the', 'what pattern is the')
ANSWER_TYPES = {'count': 'number', 'exist': 'yes/no'}
SPLITS = ('train', 'val', 'test')


def question_type(question: Question) -> str:
    """VQAv2's ``question_type``: the longest known prefix of the question."""
    text = question.text.lower()
    return max((p for p in QUESTION_TYPES if text.startswith(p)), key=len, default='what')


def _split_entries(spec: ToyWorldSpec, images: list[ImageRecord]) -> list[dict]:
    """Every question of a split with its image and ten annotator answers."""
    entries = []
    for index, image in enumerate(images):
        rng = random_stream(spec.seed, 'vqa', image.group, index)
        for k, question in enumerate(sample_questions(image.scene, rng,
                                                      spec.questions_per_image)):
            entries.append({'image': image, 'question': question,
                            'question_id': image.image_id * 1000 + k,
                            'answers': annotate(question, rng)})
    return entries


def _vqav2_questions(entries: list[dict], split: str) -> dict:
    return {'info': {'description': 'ToyWorld VQAv2-format questions'},
            'task_type': 'Open-Ended', 'data_type': 'mscoco', 'license': {},
            'data_subtype': f'toyworld_{split}',
            'questions': [{'image_id': e['image'].image_id, 'question': e['question'].text,
                           'question_id': e['question_id']} for e in entries]}


def _vqav2_annotations(entries: list[dict], split: str) -> dict:
    annotations = [{'question_type': question_type(e['question']),
                    'multiple_choice_answer': e['question'].answer,
                    'answers': e['answers'],
                    'image_id': e['image'].image_id,
                    'answer_type': ANSWER_TYPES.get(e['question'].kind, 'other'),
                    'question_id': e['question_id']} for e in entries]
    return {'info': {'description': 'ToyWorld VQAv2-format annotations'}, 'license': {},
            'data_subtype': f'toyworld_{split}', 'data_type': 'mscoco',
            'annotations': annotations}


def _blip_records(entries: list[dict], with_answers: bool) -> list[dict]:
    records = []
    for e in entries:
        record = {'question_id': e['question_id'], 'image': e['image'].path,
                  'question': e['question'].text}
        if with_answers:
            record.update(answer=[a['answer'] for a in e['answers']], dataset='vqa')
        records.append(record)
    return records


def write_vqa_files(spec: ToyWorldSpec, root: pathlib.Path,
                    images: dict[str, list[ImageRecord]]) -> list[str]:
    """Write the VQA files of all splits; return their questions and answers (vocabulary)."""
    texts = list(possible_answers())
    for split in SPLITS:
        entries = _split_entries(spec, images[f'vqa_{split}'])
        write_json(root / VQA_FOLDER / f'v2_OpenEnded_mscoco_{split}_questions.json',
                   _vqav2_questions(entries, split))
        write_json(root / VQA_FOLDER / f'v2_mscoco_{split}_annotations.json',
                   _vqav2_annotations(entries, split))
        write_json(root / 'annotations' / f'vqa_{split}.json',
                   _blip_records(entries, with_answers=split != 'test'))
        texts += [e['question'].text for e in entries]
    write_json(root / 'annotations' / 'answer_list.json', possible_answers())
    return texts
