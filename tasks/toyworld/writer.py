"""Generating a whole ToyWorld data root from a spec (see the package docstring for layout)."""
import json
import pathlib

from .caption_files import write_caption_files
from .gqa_files import write_gqa_file
from .grounding_files import write_grounding_file
from .images import make_images
from .msrvtt_files import write_msrvtt_files
from .nocaps_files import write_nocaps_files
from .spec import ToyWorldSpec
from .vocab import write_vocab
from .vqa_files import write_vqa_files
from .web_noise import write_web_corpus

SPEC_FILE = 'toyworld_spec.json'
DONE_FILE = 'DONE'
VOCAB_FILE = 'vocab/vocab.txt'


def generate_toyworld(spec: ToyWorldSpec, root: pathlib.Path) -> None:
    """Write every ToyWorld file for ``spec`` under ``root``; ``DONE`` is written last."""
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    images = make_images(spec, root)
    texts = write_caption_files(spec, root, images)
    texts += write_web_corpus(spec, root, images['web'])
    texts += write_vqa_files(spec, root, images)
    texts += write_gqa_file(spec, root, images['vqa_test'])
    texts += write_msrvtt_files(spec, root)
    write_vocab(root / VOCAB_FILE, texts)
    write_nocaps_files(spec, root)  # after the vocabulary: its words are all in it already
    write_grounding_file(spec, root, images)  # its words are all in the captions
    (root / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=1, sort_keys=True) + '\n')
    (root / DONE_FILE).write_text('complete\n')
