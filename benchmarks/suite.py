"""Every speed measure of issue #18 in one process, ours next to its anchor.

Rows (BLIP-base at 384 px on CUDA, bf16 autocast unless stated; the tiny shapes on the CPU):

* image encoding, img/s: our ViT vs timm's ``VisionTransformer`` vs Hugging Face's
  ``BlipVisionModel`` (``--compile`` adds ours under ``torch.compile``), then ours and
  timm's with their weights cast to bf16 (no autocast; the difference to ours is noted),
  and, on Hopper with ``$BLIP_CUTLASS_DIR`` set, ours with fused epilogues, then with
  CUTLASS's attention as well (``BlipViT.set_fused_epilogues``;
  :mod:`benchmarks.bench_fused_linear` and :mod:`benchmarks.bench_fused_attention` check
  them);
* beam-3 captions (max 20, min 5), img/s: ours (cached steps, and CUDA-graph steps) vs HF
  ``generate`` at one batch, and each of ours at the best of ``--caption-batches`` (models
  cast to bf16, as ``bench_caption``; ``--compile`` adds the CUDA-graph decoder at its best
  batch with the ViT under ``torch.compile``);
* ITM re-rank, pairs/s (k texts of 35 tokens per image): ours per image, ours packed
  (``itm_packing``), ours packed with bf16 weights, HF's ITM path (text encoder on the
  image tokens + ``itm_head``);
* ``--protocol``: the retrieval protocol end to end (``compute_retrieval_scores``, packed
  ITM) on a COCO-5k-sized synthetic split, under bf16 autocast and with the model cast to
  bf16 (``--compile``: each also with compiled layers; ``--protocol-runs`` picks some of
  these, ``--protocol-repeats`` runs each again in the process): minutes on an H200;
* pre-training step (ITC+ITM+LM, 224 px), img/s and peak memory, fp32, fp32 with TF32
  matmuls, bf16 autocast, bf16 with the whole step captured as one CUDA graph
  (``GraphedTrainStep``; ``--compile``: also with compiled layers, without and with their
  own CUDA graphs, and inside the whole-step graph); fused AdamW on CUDA. Ours only: the
  official code does not run here and Hugging Face has no BLIP pre-training step.

Writes ``performance.json`` and ``performance.md`` to ``--out`` (``leaderboards/``).

    python -m benchmarks.suite --device cuda [--protocol] [--compile]
    python -m benchmarks.suite --only protocol --protocol --compile \
        --protocol-runs 'bf16 + compiled layers' --protocol-repeats 2
    python -m benchmarks.suite --device cpu --quick --out /tmp/perf
"""
import argparse
import copy
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from transformers import BlipForConditionalGeneration, BlipForImageTextRetrieval

from backbones import cutlass_kernels
from backbones.generation import DecodingConfig, caption_prompt_ids, generate_ids
from backbones.graphed_step import GraphedTrainStep
from backbones.vit import VIT_SHAPES
from benchmarks.bench_caption import PROMPT, through_eos
from benchmarks.models import (SHAPES, add_vocab_argument, blip_pair, our_blip,
                               pretraining_blip)
from benchmarks.synthetic import SyntheticSplit, random_captions
from benchmarks.retrieval_precision import top1_agreement
from benchmarks.report import PEAK_TFLOPS, Row, environment, format_row, write_report
from harness.flops import count_flops
from tasks.retrieval.evaluate import scores_at_precision
from tasks.retrieval.rerank import itm_match_logits, packed_logits

WEIGHT_STD = 0.02
TEXT_LENGTH = 35
PAD_TO_MULTIPLE_OF = 8  # the whole-step graph's texts: one graph per padded length

@dataclass(frozen=True)
class Sizes:
    """The workload of one suite run."""

    shape: str
    vit_batch: int
    caption_batch: int
    caption_batches: Sequence[int]
    itm_k: int
    itm_images: int
    itm_batch: int
    packed_batch: int
    protocol_images: int
    protocol_itm_batch: int  # texts per packed ITM pass of the protocol
    train_batch: int
    train_steps: int
    repeats: int


def sizes_for(device: torch.device, quick: bool, caption_batches: Sequence[int],
              protocol_images: int) -> Sizes:
    """BLIP-base workloads on CUDA, tiny ones on the CPU (``quick``: fewer repeats)."""
    if device.type == 'cuda':
        return Sizes('base', 128, 64, caption_batches, 256, 8, 128, 1024, protocol_images, 2048,
                     64, 5 if quick else 10, 3 if quick else 10)
    return Sizes('tiny', 8, 4, (4, 8), 16, 2, 8, 24, min(protocol_images, 24), 24, 4, 2,
                 1 if quick else 3)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (timings must include it)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def median_seconds(run: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median wall time of ``run()`` over ``repeats`` calls after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        run()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on the device when ``enabled``."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def gflops(function, inputs, items: int = 1) -> float:
    """Hardware GFLOPs (2 per fvcore multiply-add) of ``function(*inputs)`` per item."""
    return 2 * count_flops(function, inputs) / items / 1e9


# ---------------------------------------------------------------- image encoding
def image_encoding_rows(args, sizes: Sizes, device: torch.device, bf16: bool) -> List[Row]:
    """Our ViT, timm's and HF BLIP's vision model on the same images, then ours and timm's
    cast to bf16 (no autocast: every activation in bf16), with their difference to ours."""
    shape = SHAPES[sizes.shape]
    hf, ours, _ = blip_pair(BlipForConditionalGeneration, ('lm',), shape=sizes.shape,
                            std=WEIGHT_STD, vocab=args.vocab, prompt=PROMPT)
    vit = VIT_SHAPES[shape.vit_arch]
    timm_vit = VisionTransformer(img_size=shape.image_size, num_classes=0, global_pool='',
                                 qkv_bias=True, **vit).eval()
    timm_vit.load_state_dict(ours.visual_encoder.state_dict())
    size = shape.image_size
    per_image = gflops(ours.visual_encoder, torch.randn(1, 3, size, size))
    images = torch.randn(sizes.vit_batch, 3, size, size, device=device)
    precision = 'bf16' if bf16 else 'fp32'
    ours_vit = ours.visual_encoder.to(device)
    cast_vit = copy.deepcopy(ours_vit).bfloat16()
    # name: (encoder, its input, under autocast)
    encoders = {'ours': (ours_vit, images, bf16), 'timm': (timm_vit.to(device), images, bf16),
                'HF BLIP vision': (hf.vision_model.to(device), images, bf16)}
    if args.compile:
        encoders['ours + torch.compile'] = (torch.compile(ours_vit), images, bf16)
    cast_images = images.bfloat16()
    encoders['ours, bf16 weights'] = (cast_vit, cast_images, False)
    encoders['timm, bf16 weights'] = (copy.deepcopy(timm_vit).bfloat16(), cast_images, False)
    if args.compile:
        encoders['ours, bf16 weights + torch.compile'] = (torch.compile(cast_vit), cast_images,
                                                          False)
    if device.type == 'cuda' and os.environ.get(cutlass_kernels.CUTLASS_ENV) and \
            cutlass_kernels.kernels_ready(device.index or 0):
        for fused, attention in (('fused epilogues', False),
                                 ('fused epilogues and attention', True)):
            fused_vit = copy.deepcopy(cast_vit).set_fused_epilogues(True, attention=attention)
            encoders[f'ours, bf16 weights, {fused}'] = (fused_vit, cast_images, False)
            if args.compile:
                encoders[f'ours, bf16 weights, {fused} + torch.compile'] = (
                    torch.compile(fused_vit), cast_images, False)
    with torch.no_grad():
        with autocast(device, bf16):
            reference = ours_vit(images).float()
        tokens = cast_vit(cast_images).float()
    cosine = F.cosine_similarity(tokens[:, 0], reference[:, 0], dim=-1).min().item()
    difference = (f'vs ours ({precision}): tokens max abs difference '
                  f'{(tokens - reference).abs().max().item():.1e} (mean absolute value '
                  f'{reference.abs().mean().item():.2f}), [CLS] cosine >= {cosine:.5f}')
    rows = []
    for name, (encoder, inputs, under_autocast) in encoders.items():
        with torch.no_grad(), autocast(device, under_autocast):
            seconds = median_seconds(lambda: encoder(inputs), device, sizes.repeats)
        cast = 'bf16 weights' in name
        rows.append(Row(f'image encoding {shape.vit_arch}', name,
                        sizes.vit_batch / seconds, 'img/s',
                        f'batch {sizes.vit_batch}, {size} px, '
                        f'{"bf16 weights" if cast else precision}',
                        'bf16' if cast else precision, per_image,
                        notes=difference if name == 'ours, bf16 weights' else ''))
    return rows


# ---------------------------------------------------------------- captions
def caption_rows(args, sizes: Sizes, device: torch.device, bf16: bool) -> List[Row]:
    """Beam-3 captions: ours (cached, then CUDA-graph steps) vs HF ``generate`` at one
    batch, then each of ours at its best batch."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    hf, ours, _ = blip_pair(BlipForConditionalGeneration, ('lm',), shape=sizes.shape,
                            std=WEIGHT_STD, vocab=args.vocab, prompt=PROMPT)
    hf.to(device, dtype)
    ours.to(device, dtype).eval()
    size = SHAPES[sizes.shape].image_size
    tokenizer = ours.tokenizer
    config = DecodingConfig(eos_token_id=tokenizer.sep_token_id,
                            pad_token_id=tokenizer.pad_token_id, num_beams=3, max_length=20,
                            min_length=5, length_normalization='hf')
    prompt = caption_prompt_ids(ours, device)
    precision = 'bf16' if bf16 else 'fp32'
    eos = config.eos_token_id

    def images_of(batch: int) -> torch.Tensor:
        return torch.randn(batch, 3, size, size, device=device, dtype=dtype,
                           generator=torch.Generator(device).manual_seed(batch))

    def ours_at(batch: int, cuda_graphs: bool, encode: Callable = ours.encode_image):
        images = images_of(batch)

        @torch.no_grad()
        def run():
            return generate_ids(ours.text_decoder, encode(images), prompt, config,
                                cuda_graphs=cuda_graphs)
        return run

    def hf_at(batch: int):
        images = images_of(batch)
        hf_prompt = tokenizer([PROMPT] * batch, 40, device=device)['input_ids']

        @torch.no_grad()
        def run():
            return hf.generate(pixel_values=images, input_ids=hf_prompt.clone(), num_beams=3,
                               max_length=20, min_length=5)
        return run

    batch = sizes.caption_batch
    plain = ours_at(batch, False)()
    plain_ids = through_eos(plain, eos)
    same_as_plain = same_captions(ours_at(batch, True)(), plain, eos)
    # Off CUDA the same fixed-shape steps run eagerly, without graphs.
    graphed = 'ours + CUDA graphs' if device.type == 'cuda' else 'ours, static steps'
    notes = {
        'ours': f'token-identical to HF: {plain_ids == through_eos(hf_at(batch)(), eos)}',
        graphed: f'captions identical to ours: {same_as_plain}/{batch}',
    }
    settings = f'batch {batch}, 3 beams, max 20, {precision} weights'
    runs = (('ours', ours_at(batch, False)), (graphed, ours_at(batch, True)),
            ('HF generate', hf_at(batch)))
    rows = [Row('beam-3 captions', name, batch / median_seconds(run, device, sizes.repeats),
                'img/s', settings, precision, notes=notes.get(name, ''))
            for name, run in runs]
    for name, cuda_graphs in (('ours', False), (graphed, True)):
        best = max(((images, images / median_seconds(ours_at(images, cuda_graphs), device,
                                                     sizes.repeats))
                    for images in sizes.caption_batches), key=lambda pair: pair[1])
        rows.append(Row('beam-3 captions', f'{name}, best batch', best[1], 'img/s',
                        f'batch {best[0]} (of {list(sizes.caption_batches)}), 3 beams, '
                        f'max 20, {precision} weights', precision))
    if args.compile:  # at the CUDA-graph decoder's best batch only: one compilation
        compiled = torch.compile(ours.visual_encoder)
        run = ours_at(best[0], True, encode=compiled)
        rows.append(Row('beam-3 captions', f'{graphed} + torch.compile ViT, best batch',
                        best[0] / median_seconds(run, device, sizes.repeats), 'img/s',
                        f'batch {best[0]}, 3 beams, max 20, {precision} weights', precision,
                        notes=f'captions identical to {graphed}: '
                              f'{same_captions(run(), ours_at(best[0], True)(), eos)}/{best[0]}'))
    return rows


def same_captions(ids: torch.Tensor, reference_ids: torch.Tensor, eos: int) -> int:
    """How many captions ``ids`` and ``reference_ids`` agree on (up to the first eos)."""
    return sum(a == b for a, b in zip(through_eos(ids, eos), through_eos(reference_ids, eos)))


# ---------------------------------------------------------------- ITM re-ranking
def itm_rows(args, sizes: Sizes, device: torch.device, bf16: bool) -> List[Row]:
    """ITM match logits of k texts per image: ours per image, ours packed, HF's ITM path."""
    hf, ours, _ = blip_pair(BlipForImageTextRetrieval, ('itc', 'itm'), shape=sizes.shape,
                            std=WEIGHT_STD, vocab=args.vocab, max_text_length=TEXT_LENGTH)
    size, k, count = SHAPES[sizes.shape].image_size, sizes.itm_k, sizes.itm_images
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1000, 30000, (k, TEXT_LENGTH), generator=generator)
    input_ids[:, 0] = ours.tokenizer.cls_token_id
    mask = torch.ones_like(input_ids)
    tokens = dict(input_ids=input_ids, attention_mask=mask)
    pair_gflops = itm_pair_gflops(ours, torch.randn(1, 3, size, size), input_ids[:2], mask[:2])
    hf.to(device)
    ours.to(device)
    hf_ids = ours.with_first_token(input_ids, ours.tokenizer.enc_token_id).to(device)
    with torch.no_grad(), autocast(device, bf16):
        images = torch.randn(count, 3, size, size, device=device)
        embeds = ours.encode_image(images)
        hf_embeds = hf.vision_model(pixel_values=images).last_hidden_state
        texts = [torch.arange(k)] * count

        def run_ours():
            return [itm_match_logits(ours, embeds[row:row + 1], input_ids, mask, sizes.itm_batch)
                    for row in range(count)]

        def run_packed():
            return packed_logits(ours, embeds, texts, tokens, sizes.packed_batch)

        def run_hf():
            logits = []
            for row in range(count):
                for start in range(0, k, sizes.itm_batch):
                    ids = hf_ids[start:start + sizes.itm_batch]
                    image = hf_embeds[row:row + 1].expand(len(ids), -1, -1)
                    hidden = hf.text_encoder(
                        input_ids=ids, attention_mask=torch.ones_like(ids),
                        encoder_hidden_states=image,
                        encoder_attention_mask=torch.ones(image.shape[:2], device=device,
                                                          dtype=torch.long)).last_hidden_state
                    logits.append(hf.itm_head(hidden[:, 0])[:, 1])
            return logits

        with autocast(device, False):
            cast = copy.deepcopy(ours).bfloat16()
            cast_embeds = cast.encode_image(images)

        def run_cast():
            with autocast(device, False):
                return packed_logits(cast, cast_embeds, texts, tokens, sizes.packed_batch)

        packed = run_packed()
        per_image = (packed - torch.cat(run_ours()).float()).abs().max().item()
        cast_difference = (run_cast() - packed).abs().max().item()
        packed_name = f'ours packed ({sizes.packed_batch} texts/pass)'
        cast_name = f'ours packed, bf16 weights ({sizes.packed_batch} texts/pass)'
        notes = {packed_name: f'max abs logit difference to per-image: {per_image:.1e}',
                 cast_name: f'max abs logit difference to ours packed: {cast_difference:.1e} '
                            f'(mean absolute logit {packed.abs().mean().item():.2f})'}
        runs = {f'ours (per image, {sizes.itm_batch} texts/pass)': run_ours,
                packed_name: run_packed, cast_name: run_cast,
                f'HF ITM path ({sizes.itm_batch} texts/pass)': run_hf}
        seconds = {name: median_seconds(run, device, sizes.repeats) for name, run in runs.items()}
    precision = 'bf16' if bf16 else 'fp32'
    settings = f'k={k}, {count} images, {TEXT_LENGTH}-token texts'
    return [Row('ITM re-rank', name, count * k / value, 'pairs/s',
                f'{settings}, {"bf16 weights" if name == cast_name else precision}',
                'bf16' if name == cast_name else precision, pair_gflops,
                notes=notes.get(name, ''))
            for name, value in seconds.items()]


def itm_pair_gflops(model, image: torch.Tensor, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor) -> float:
    """GFLOPs of one ITM pair when its image's keys/values are reused (fvcore, on the CPU):
    the cost of two texts on one image minus that of one."""
    embeds = model.encode_image(image)

    def texts_on_one_image(ids, mask, image_embeds):
        count = ids.shape[0]
        image_kv = [(keys.expand(count, -1, -1, -1), values.expand(count, -1, -1, -1))
                    for keys, values in model.image_key_values(image_embeds)]
        return model.itm_logits(ids, mask, image_kv=image_kv)

    two = gflops(texts_on_one_image, (input_ids[:2], attention_mask[:2], embeds))
    return two - gflops(texts_on_one_image, (input_ids[:1], attention_mask[:1], embeds))


# ---------------------------------------------------------------- retrieval protocol
def protocol_runs(bf16: bool, compile_layers: bool,
                  names: Optional[Sequence[str]] = None) -> Dict[str, dict]:
    """The protocol's runs by name: the suite's precision, then the model cast to bf16, each
    followed (``compile_layers``) by the same with compiled layers; ``names`` keeps those
    runs only, in that order."""
    precision = 'bf16' if bf16 else 'fp32'
    runs = {}
    for name, chosen in ((precision, dict(autocast_dtype='bfloat16' if bf16 else None)),
                         ('bf16 weights', dict(weights_dtype='bfloat16'))):
        runs[name] = chosen
        if compile_layers:
            runs[f'{name} + compiled layers'] = dict(chosen, compile_layers=True)
    unknown = [name for name in names or () if name not in runs]
    if unknown:
        raise SystemExit(f'--protocol-runs {unknown}: no such run here; choose from '
                         f'{list(runs)} (compiled runs need --compile)')
    return {name: runs[name] for name in names} if names else runs


def protocol_rows(args, sizes: Sizes, device: torch.device, bf16: bool,
                  runs: Optional[Dict[str, dict]] = None) -> List[Row]:
    """``compute_retrieval_scores`` end to end (packed ITM) on a synthetic split, one row per
    run of :func:`protocol_runs` (default: ``bf16``, ``args.compile`` and
    ``args.protocol_runs``), each repeated ``args.protocol_repeats`` times in this process
    (a repeat reuses what the first compiled). Each later row's notes give the share of its
    top-1 candidates that the first row's are."""
    shape = SHAPES[sizes.shape]
    model = our_blip(('itc', 'itm'), shape=sizes.shape, vocab=args.vocab,
                     max_text_length=TEXT_LENGTH).to(device)
    dataset = SyntheticSplit(sizes.protocol_images, shape.image_size)
    k = min(256, sizes.protocol_images)
    runs = runs or protocol_runs(bf16, args.compile, args.protocol_runs)
    labelled = [(name if repeat == 0 else f'{name}, run {repeat + 1}', chosen)
                for name, chosen in runs.items() for repeat in range(args.protocol_repeats)]
    rows, scores = [], {}
    for name, chosen in labelled:
        sync(device)
        start = time.perf_counter()
        scores[name] = scores_at_precision(
            model, dataset, **chosen, k=k, batch_size=sizes.vit_batch,
            itm_batch_size=sizes.protocol_itm_batch, device=device, num_workers=args.workers,
            itm_packing=True)
        sync(device)
        seconds = time.perf_counter() - start
        rates = scores[name].throughput
        notes = (f'ITM {rates.get("ITM pairs/s per process", 0.0):.0f} pairs/s, '
                 f'{rates.get("img/s per process", 0.0):.0f} img/s')
        reference = next(iter(scores))
        if name != reference:
            notes += f'; top-1 as {reference}: ' + ', '.join(
                f'{direction} {top1_agreement(scores[name], scores[reference], direction):.1%}'
                for direction in ('i2t', 't2i'))
        settings = (f'{len(dataset)} images, {len(dataset.texts)} texts, k={k}, '
                    f'{sizes.protocol_itm_batch} texts/pass, {name}')
        rows.append(Row('retrieval protocol end to end', 'ours packed', seconds, 's', settings,
                        'bf16' if bf16 or 'bf16' in name else 'fp32', notes=notes))
    return rows


# ---------------------------------------------------------------- pre-training step
@dataclass(frozen=True)
class TrainSetting:
    """One pre-training row: its precision label and how the step runs."""

    label: str
    bf16: bool = False
    tf32: bool = False
    compiled_layers: Optional[str] = None  # torch.compile mode of each layer
    whole_step_graph: bool = False  # GraphedTrainStep, texts padded to PAD_TO_MULTIPLE_OF
    reuse_image_kv: bool = False  # Blip(reuse_image_kv=True)


def train_settings(device: torch.device, compile_layers: bool) -> List[TrainSetting]:
    """The pre-training rows to run: fp32 only on the CPU (and the whole-step path, which
    runs eagerly there), on CUDA also TF32, bf16 and bf16 as one CUDA graph, without and
    with the images' keys/values projected once; ``--compile`` adds compiled layers without
    and with their own CUDA graphs, and inside the whole-step graph (both ways)."""
    if device.type != 'cuda':
        return [TrainSetting('fp32'), TrainSetting('fp32, whole step', whole_step_graph=True)]
    settings = [TrainSetting('fp32'), TrainSetting('tf32', tf32=True),
                TrainSetting('bf16', bf16=True),
                TrainSetting('bf16, whole-step CUDA graph', bf16=True, whole_step_graph=True),
                TrainSetting('bf16, whole-step CUDA graph, image K/V once', bf16=True,
                             whole_step_graph=True, reuse_image_kv=True)]
    if compile_layers:
        settings += [
            TrainSetting('bf16 + compiled layers', bf16=True, compiled_layers='default'),
            TrainSetting('bf16 + compiled layers, CUDA graphs', bf16=True,
                         compiled_layers='reduce-overhead'),
            TrainSetting('bf16 + compiled layers, whole-step CUDA graph', bf16=True,
                         compiled_layers='default', whole_step_graph=True),
            TrainSetting('bf16 + compiled layers, whole-step CUDA graph, image K/V once',
                         bf16=True, compiled_layers='default', whole_step_graph=True,
                         reuse_image_kv=True)]
    return settings


def training_rows(args, sizes: Sizes, device: torch.device) -> List[Row]:
    """ITC+ITM+LM steps at 224 px in each of :func:`train_settings`."""
    texts = random_captions(sizes.train_batch)
    rows = []
    for setting in train_settings(device, args.compile):
        if setting.compiled_layers:
            # Compiled as in a new process: the rows before must not use up TorchDynamo's
            # recompilation limit (past it, layers run eagerly with only a warning).
            torch._dynamo.reset()
        step, size = pretraining_step(setting, sizes.shape, device, args.vocab, texts)
        torch.backends.cuda.matmul.allow_tf32 = setting.tf32
        torch.backends.cudnn.allow_tf32 = setting.tf32
        if device.type == 'cuda':
            # Peak memory counts the warm-up: CUDA graphs take their memory pool there.
            torch.cuda.reset_peak_memory_stats(device)
        # Optimizer state; compiled layers see each text length shape; the whole-step graph
        # is captured after its eager warm-up steps.
        for _ in range(5 if setting.whole_step_graph else 3):
            step()
        seconds = median_seconds(step, device, sizes.train_steps)
        memory = torch.cuda.max_memory_allocated(device) / 2 ** 30 \
            if device.type == 'cuda' else None
        padded = (f', texts padded to a multiple of {PAD_TO_MULTIPLE_OF} tokens'
                  if setting.whole_step_graph else '')
        rows.append(Row('pre-training step ITC+ITM+LM', 'ours', sizes.train_batch / seconds,
                        'img/s', f'batch {sizes.train_batch}, {size} px, {setting.label}, '
                        f'{"fused" if device.type == "cuda" else "foreach"} AdamW{padded}',
                        setting.label.split()[0].rstrip(','),
                        notes='official code not runnable here', peak_memory_gib=memory))
        del step
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = True  # torch's default
    return rows


def pretraining_step(setting: TrainSetting, shape: Optional[str], device: torch.device,
                     vocab: Optional[str], texts: Sequence[str]) -> Tuple[Callable, int]:
    """``(step, image size)``: a call of ``step`` trains our BLIP of ``shape``
    (:func:`~benchmarks.models.pretraining_blip`, seed 0) one step in ``setting`` on
    ``texts`` and as many random images, with AdamW (fused on CUDA, capturable for the
    whole-step graph)."""
    torch.manual_seed(0)
    model, size = pretraining_blip(shape, device, vocab, reuse_image_kv=setting.reuse_image_kv)
    if setting.compiled_layers:
        model.compile_layers(mode=setting.compiled_layers)
    cuda = device.type == 'cuda'
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.05,
                                  fused=cuda, capturable=cuda and setting.whole_step_graph)
    images = torch.randn(len(texts), 3, size, size,
                         generator=torch.Generator().manual_seed(0)).to(device)
    step = (whole_step_graph(model, optimizer, images, texts, setting.bf16)
            if setting.whole_step_graph else
            plain_train_step(model, optimizer, images, texts, setting))
    return step, size


def plain_train_step(model, optimizer, images, texts, setting: TrainSetting) -> Callable:
    """One eager step per call (the layers' own CUDA graphs marked as
    ``CompileLayersHook`` marks them)."""
    layer_graphs = setting.compiled_layers == 'reduce-overhead'

    def step():
        if layer_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with autocast(images.device, setting.bf16):
            losses = model.loss(images, dict(text=texts))
        sum(losses.values()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def whole_step_graph(model, optimizer, images, texts, bf16: bool) -> Callable:
    """One :class:`GraphedTrainStep` call per call; the texts are tokenised every step, as
    a training loop would, padded to the next multiple of ``PAD_TO_MULTIPLE_OF`` tokens
    (one graph per length)."""
    graphed = GraphedTrainStep(model, optimizer, torch.bfloat16 if bf16 else None)

    def step():
        graphed(images, model.text_inputs(dict(text=texts), len(texts), images.device,
                                          pad_to_multiple_of=PAD_TO_MULTIPLE_OF))
    return step


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--quick', action='store_true', help='fewer repeats and steps')
    parser.add_argument('--protocol', action='store_true',
                        help='also run the retrieval protocol end to end (minutes on CUDA)')
    parser.add_argument('--protocol-images', type=int, default=5000,
                        help='images of the synthetic protocol split (5 texts each)')
    parser.add_argument('--protocol-runs', nargs='+', default=None, metavar='NAME',
                        help="only these protocol runs, e.g. 'bf16 + compiled layers' "
                             '(default: every run of the precision and --compile)')
    parser.add_argument('--protocol-repeats', type=int, default=1,
                        help='run each protocol run this many times in the process (a '
                             'compiled run compiles in the first)')
    parser.add_argument('--caption-batches', type=int, nargs='+',
                        default=[64, 128, 256, 512, 1024])
    parser.add_argument('--compile', action='store_true',
                        help='add our ViT under torch.compile to the image-encoding rows and '
                             'the best-batch CUDA-graph caption row, bf16 training rows '
                             'with compiled layers, without and with CUDA graphs '
                             '(mode=reduce-overhead), and protocol runs with compiled layers')
    parser.add_argument('--workers', type=int, default=None,
                        help='data loader workers of the protocol (default: 8 on CUDA, 0 on CPU)')
    parser.add_argument('--only', nargs='+', default=None,
                        choices=('vit', 'caption', 'itm', 'protocol', 'train'),
                        help='run only these measures')
    parser.add_argument('--out', type=Path, default=Path('leaderboards'),
                        help='folder of performance.json / performance.md')
    add_vocab_argument(parser)
    args = parser.parse_args(argv)
    if args.protocol_repeats < 1:
        parser.error(f'--protocol-repeats must be at least 1, got {args.protocol_repeats}')
    return args


def main(argv: Optional[Sequence[str]] = None) -> List[Row]:
    """Run the measures, print each row as it comes, then write the report files."""
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.workers is None:
        args.workers = 8 if device.type == 'cuda' else 0
    sizes = sizes_for(device, args.quick, args.caption_batches, args.protocol_images)
    bf16 = device.type == 'cuda'
    peaks = PEAK_TFLOPS if device.type == 'cuda' else None
    measures = {'vit': lambda: image_encoding_rows(args, sizes, device, bf16),
                'caption': lambda: caption_rows(args, sizes, device, bf16),
                'itm': lambda: itm_rows(args, sizes, device, bf16),
                'train': lambda: training_rows(args, sizes, device),
                'protocol': lambda: protocol_rows(args, sizes, device, bf16)}  # longest last
    chosen = args.only or [name for name in measures if name != 'protocol' or args.protocol]
    env = environment(device, peaks)
    print(f'{env["device"]}: torch {env["torch"]}, transformers {env["transformers"]}, '
          f'shape {sizes.shape}', flush=True)
    rows: List[Row] = []
    for name in chosen:
        for row in measures[name]():
            rows.append(row.fill_mfu(peaks))
            print(format_row(row), flush=True)
        write_report(rows, env, args.out)  # a later failure keeps what was measured
    return rows


if __name__ == '__main__':
    main()
