"""Explain one checkpoint's view of images: ``python -m harness.explain --checkpoint CKPT
--image IMG --text "..."``.

Writes ITM Grad-CAM maps of the text (one overlay per word, a grid, the raw ``.npy``) and
the decoder's cross-attention per word of a generated caption, through the registered
``explain`` task (:mod:`tasks.explain`); the model comes from ``BlipFromCheckpoint`` and is
loaded strictly. For many images use a config with an ``EvaluateStage(task='explain')``.
"""
import argparse
import sys
from pathlib import Path

from harness.core.registry import DATASETS, FUNCTIONS, MODELS, TASKS

PROG = 'python -m harness.explain'


def build_parser() -> argparse.ArgumentParser:
    """The command's parser."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', required=True,
                        help='a BLIP checkpoint (.pth, ours or official; or a Hugging Face '
                             'BLIP directory)')
    parser.add_argument('--image', action='append', required=True,
                        help='an image file (repeatable)')
    parser.add_argument('--text', action='append',
                        help='the text to explain with ITM Grad-CAM (one, or one per image)')
    parser.add_argument('--bert-dir', help="the tokenizer's vocabulary folder, for a .pth "
                        '(ToyWorld: <data root>/vocab)')
    parser.add_argument('--vision-heads', type=int, help='ViT attention heads, when its width '
                        'is not a multiple of 64 (the tiny ToyWorld ViT: 3)')
    parser.add_argument('--text-heads', type=int, help='text transformer attention heads, when '
                        'they are not 64 wide (the tiny ToyWorld MED: 4)')
    parser.add_argument('--out', default='work_dirs/explain', type=Path,
                        help='output folder (default: work_dirs/explain)')
    parser.add_argument('--layer', type=int, help="ITM Grad-CAM layer (default: BLIP's "
                        'demo layer scaled to the depth)')
    parser.add_argument('--caption-layer', type=int, help='decoder layer shown per caption word')
    parser.add_argument('--no-caption', action='store_true',
                        help='skip captioning (models without a decoder)')
    parser.add_argument('--device', default='cpu', help='torch device (default: cpu)')
    return parser


def texts_per_image(texts, images) -> list:
    """One text per image: the texts as given, one text repeated, or none ('')."""
    if not texts:
        return [''] * len(images)
    if len(texts) == 1:
        return texts * len(images)
    if len(texts) != len(images):
        raise ValueError(f'{len(images)} --image but {len(texts)} --text; give one --text, '
                         f'or one per --image')
    return texts


def main(argv=None) -> int:
    """Build, load, explain; prints the output folder."""
    args = build_parser().parse_args(argv)
    try:
        model = MODELS.build(dict(
            type='BlipFromCheckpoint', checkpoint=args.checkpoint, bert_dir=args.bert_dir,
            vision=dict(num_heads=args.vision_heads) if args.vision_heads else None,
            text_overrides=(dict(num_attention_heads=args.text_heads) if args.text_heads
                            else None)))
        FUNCTIONS.get('load_for_evaluation')(model, args.checkpoint, strict=True)
        model.to(args.device).eval()
        dataset = DATASETS.build(dict(type='ExplainImages', images=args.image,
                                      texts=texts_per_image(args.text, args.image),
                                      image_size=model.image_size,
                                      preprocessing=model.preprocessing))
        result = TASKS.get('explain')(model, dataset, device=args.device, out_dir=args.out,
                                      layer=args.layer, caption_layer=args.caption_layer,
                                      caption=not args.no_caption)
    except (ValueError, KeyError, FileNotFoundError) as error:
        print(f'{PROG}: error: {error}', file=sys.stderr)
        return 2
    print(f'{len(result.outputs["files"])} files under {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
