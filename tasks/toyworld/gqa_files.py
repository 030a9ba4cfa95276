"""A GQA-format balanced test-dev question file over the VQA test images.

GQA keys questions by id; each has ``imageId`` (here the image file's stem, so the reader
finds ``<image_root>/<imageId>.png``), ``question``, ``answer``, ``fullAnswer`` and ``types``.
"""
import pathlib

from .images import ImageRecord
from .jsonio import write_json
from .questions import sample_questions
from .spec import ToyWorldSpec, random_stream

GQA_TYPES = {  # kind -> (structural, semantic, detailed)
    'color': ('query', 'attr', 'queryColor'),
    'shape': ('query', 'attr', 'queryShape'),
    'size': ('choose', 'attr', 'chooseSize'),
    'count': ('query', 'obj', 'count'),
    'exist': ('verify', 'obj', 'exist'),
    'relation': ('query', 'rel', 'relS'),
    'background': ('query', 'global', 'queryPattern'),
}


def write_gqa_file(spec: ToyWorldSpec, root: pathlib.Path,
                   images: list[ImageRecord]) -> list[str]:
    """Write ``gqa/testdev_balanced_questions.json``; return its texts (vocabulary)."""
    questions = {}
    for index, image in enumerate(images):
        rng = random_stream(spec.seed, 'gqa', index)
        image_key = pathlib.PurePosixPath(image.path).stem
        for k, question in enumerate(sample_questions(image.scene, rng,
                                                      spec.questions_per_image)):
            structural, semantic, detailed = GQA_TYPES[question.kind]
            questions[str(image.image_id * 100 + k)] = {
                'imageId': image_key, 'question': question.text, 'answer': question.answer,
                'fullAnswer': question.full_answer, 'isBalanced': True,
                'types': {'structural': structural, 'semantic': semantic,
                          'detailed': detailed}}
    write_json(root / 'gqa' / 'testdev_balanced_questions.json', questions)
    return [text for q in questions.values()
            for text in (q['question'], q['answer'], q['fullAnswer'])]
