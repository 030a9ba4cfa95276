"""COCO caption metrics with pycocoevalcap's scorers, called one by one.

``COCOEvalCap.evaluate()`` builds SPICE before scoring anything, and SPICE downloads Stanford
CoreNLP on first use, which fails offline. So this module reproduces what ``evaluate()``
does — PTB-tokenise references and predictions, then run BLEU(4), METEOR, ROUGE-L, CIDEr
and SPICE on the tokenised text — but runs SPICE only when its CoreNLP jars are installed
and otherwise reports it as unavailable, with the reason.

Scores are fractions (0..1) as pycocoevalcap returns them; leaderboards (and the BLIP paper)
print them multiplied by 100. CIDEr's document frequencies come from the scored references,
so a subset's CIDEr is not a slice of the full set's.
"""
import atexit
import json
import math
import os
import shutil
import subprocess
import threading
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from harness.core.optional import require

FEATURE = 'caption metrics (BLEU, METEOR, ROUGE-L, CIDEr, SPICE)'
SCORERS = {'BLEU': ('pycocoevalcap.bleu.bleu', 'Bleu'),
           'METEOR': ('pycocoevalcap.meteor.meteor', 'Meteor'),
           'ROUGE-L': ('pycocoevalcap.rouge.rouge', 'Rouge'),
           'CIDEr': ('pycocoevalcap.cider.cider', 'Cider'),
           'SPICE': ('pycocoevalcap.spice.spice', 'Spice')}
CAPTION_METRIC_FAMILIES = ('BLEU', 'METEOR', 'ROUGE-L', 'CIDEr', 'SPICE')
BLEU_KEYS = ('BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4')


@dataclass
class CaptionScores:
    """Corpus scores (fractions), per-image scores, and the metrics that could not run."""

    scores: dict[str, float] = field(default_factory=dict)
    per_image: dict[str, dict[Hashable, float]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f'{name}: {value:.4f}' for name, value in self.scores.items()]
        lines += [f'{name}: unavailable ({reason})' for name, reason in self.unavailable.items()]
        return '\n'.join(lines)


def scorer(family: str):
    """A new pycocoevalcap scorer of one metric family (imported on first use)."""
    module, name = SCORERS[family]
    return getattr(require(module, FEATURE, 'pycocoevalcap'), name)()


class SharedMeteor:
    """One METEOR process kept for the whole Python process, started on first use.

    Starting METEOR (a JVM that loads its paraphrase tables) takes ~6 s, scoring 200
    captions ~0.4 s; every ``EVAL`` request carries its own statistics, so a reused process
    returns what a fresh one would. A process that died is started again, and one whose
    request failed is discarded (its pipe may hold a half-read answer), so no score is ever
    read from a stale exchange.
    """

    def __init__(self):
        self._meteor = None

    def compute_score(self, references, predictions):
        """pycocoevalcap's ``Meteor.compute_score`` on the kept process."""
        if self._meteor is None or self._meteor.meteor_p.poll() is not None:
            self._meteor = scorer('METEOR')
        try:
            return self._meteor.compute_score(references, predictions)
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int | None:
        """The METEOR process's id (None before first use or after :meth:`close`)."""
        return None if self._meteor is None else self._meteor.meteor_p.pid

    def close(self) -> None:
        """Stop the kept process (a later score starts a new one)."""
        meteor, self._meteor = self._meteor, None
        if meteor is not None:
            # A request that failed left pycocoevalcap's lock taken, and its ``__del__``
            # takes that lock: give it a free one so dropping the scorer cannot hang.
            meteor.lock = threading.Lock()
            meteor.meteor_p.kill()
            meteor.meteor_p.wait()


SHARED_METEOR = SharedMeteor()
atexit.register(SHARED_METEOR.close)


def spice_unavailable_reason() -> str | None:
    """Why SPICE cannot run here (missing Java or Stanford CoreNLP jars), or None if it can.

    The reason names the jar relative to the pycocoevalcap package (no machine path), so
    boards that quote it stay the same on every machine.
    """
    if shutil.which('java') is None:
        return 'no Java runtime on PATH'
    get_stanford_models = require('pycocoevalcap.spice.get_stanford_models', FEATURE,
                                  'pycocoevalcap')
    library = os.path.join(get_stanford_models.SPICEDIR, get_stanford_models.SPICELIB)
    for suffix in ('.jar', '-models.jar'):
        jar = os.path.join(library, get_stanford_models.JAR + suffix)
        if not os.path.exists(jar):
            where = os.path.relpath(jar, os.path.dirname(os.path.dirname(
                get_stanford_models.SPICEDIR)))
            return (f'Stanford CoreNLP jar {where} (inside the installed pycocoevalcap) is '
                    'missing; run '
                    '`python -m pycocoevalcap.spice.get_stanford_models` once with network '
                    'access to install it')
    return None


def _require_java() -> None:
    """Raise a clear error when Java, needed by PTB tokenisation and METEOR, is missing."""
    if shutil.which('java') is None:
        raise RuntimeError('caption metrics need a Java runtime on PATH (pycocoevalcap runs '
                           'the Stanford PTB tokenizer and METEOR in Java); install one, e.g. '
                           '`apt-get install default-jre-headless`')


def _check_metric_names(metrics: Iterable[str]) -> list[str]:
    """Validate requested metric families and return them in the canonical order."""
    requested = set(metrics)
    unknown = requested - set(CAPTION_METRIC_FAMILIES)
    if unknown:
        raise ValueError(f'unknown caption metrics {sorted(unknown)}; '
                         f'choose from {CAPTION_METRIC_FAMILIES}')
    return [name for name in CAPTION_METRIC_FAMILIES if name in requested]


def _tokenize(captions_by_image: Mapping[Hashable, list[str]]) -> dict[Hashable, list[str]]:
    """PTB-tokenise (lower-case, punctuation removed) with pycocoevalcap's tokenizer."""
    records = {image: [{'caption': caption} for caption in captions]
               for image, captions in captions_by_image.items()}
    tokenizer = require('pycocoevalcap.tokenizer.ptbtokenizer', FEATURE, 'pycocoevalcap')
    return tokenizer.PTBTokenizer().tokenize(records)


def _score_spice(references, predictions, result: CaptionScores) -> None:
    """Add SPICE to ``result``, or record why it is unavailable; never raise."""
    reason = spice_unavailable_reason()
    if reason is None:
        try:
            score, per_image = scorer('SPICE').compute_score(references, predictions)
        except (OSError, subprocess.CalledProcessError, ValueError) as error:
            reason = f'SPICE failed: {error}'
        else:
            image_scores = [scores['All']['f'] for scores in per_image]
            failed = sum(math.isnan(value) for value in image_scores)
            if failed:
                reason = f'SPICE returned no score for {failed} of {len(image_scores)} images'
            else:
                result.scores['SPICE'] = float(score)
                result.per_image['SPICE'] = dict(zip(sorted(references), image_scores))
    if reason is not None:
        result.unavailable['SPICE'] = reason


def _score_tokenized(references, predictions, families: list[str]) -> CaptionScores:
    """Run the requested scorers on tokenised text, in ``COCOEvalCap.evaluate()``'s order."""
    result = CaptionScores()
    image_ids = list(references)
    if 'BLEU' in families:
        scores, per_image = scorer('BLEU').compute_score(references, predictions)
        for key, score, image_scores in zip(BLEU_KEYS, scores, per_image):
            result.scores[key] = float(score)
            result.per_image[key] = dict(zip(image_ids, image_scores))
    for name in ('METEOR', 'ROUGE-L', 'CIDEr'):
        if name in families:
            metric = SHARED_METEOR if name == 'METEOR' else scorer(name)
            score, image_scores = metric.compute_score(references, predictions)
            result.scores[name] = float(score)
            result.per_image[name] = dict(zip(image_ids, (float(s) for s in image_scores)))
    if 'SPICE' in families:
        _score_spice(references, predictions, result)
    return result


def score_captions(references: Mapping[Hashable, Sequence[str]],
                   predictions: Mapping[Hashable, str],
                   metrics: Iterable[str] = CAPTION_METRIC_FAMILIES) -> CaptionScores:
    """Score one predicted caption per image against that image's reference captions.

    Only the images in ``predictions`` are scored, in the order of ``references``.

    Args:
        references: image id → human captions (raw text; tokenised here).
        predictions: image id → predicted caption (raw text).
        metrics: metric families among ``CAPTION_METRIC_FAMILIES``; ``'BLEU'`` gives
            ``BLEU-1`` … ``BLEU-4``.

    Returns:
        :class:`CaptionScores` with keys ``BLEU-1..4, METEOR, ROUGE-L, CIDEr, SPICE`` (those
        requested and computed) as fractions, and ``unavailable`` naming any metric that
        could not be computed, with the reason.
    """
    families = _check_metric_names(metrics)
    unknown = [image for image in predictions if image not in references]
    if unknown:
        raise ValueError(f'{len(unknown)} predicted image ids have no reference captions, '
                         f'e.g. {unknown[:5]}; predictions and references must share ids')
    if not predictions:
        raise ValueError('no predictions to score')
    scored = [image for image in references if image in predictions]
    empty = [image for image in scored if not references[image]]
    if empty:
        raise ValueError(f'images {empty[:5]} have no reference captions')
    _require_java()
    tokenized_references = _tokenize({image: list(references[image]) for image in scored})
    tokenized_predictions = _tokenize({image: [predictions[image]] for image in scored})
    return _score_tokenized(tokenized_references, tokenized_predictions, families)


def load_coco_references(gt_file: str) -> dict[Hashable, list[str]]:
    """Read a COCO-format caption ground truth into image id → captions.

    Images are ordered as in the file's ``images`` list and captions as in ``annotations``,
    which is the order pycocotools' ``COCO`` (and so ``COCOEvalCap``) uses.
    """
    with open(gt_file) as file:
        ground_truth = json.load(file)
    for key in ('images', 'annotations'):
        if key not in ground_truth:
            raise ValueError(f'{gt_file} has no "{key}" list; a COCO-format caption ground '
                             'truth needs "images" [{"id"}] and annotations '
                             '[{"image_id", "caption", "id"}]')
    references = {image['id']: [] for image in ground_truth['images']}
    for annotation in ground_truth['annotations']:
        image_id = annotation['image_id']
        if image_id not in references:
            raise ValueError(f'{gt_file}: annotation {annotation.get("id")} refers to image '
                             f'{image_id!r}, which is not in "images"')
        references[image_id].append(annotation['caption'])
    return references


def captions_by_image(predictions: Sequence[Mapping]) -> dict[Hashable, str]:
    """``[{"image_id", "caption"}]`` predictions as image id → caption (one per image)."""
    captions = {}
    for position, prediction in enumerate(predictions):
        missing = {'image_id', 'caption'} - set(prediction)
        if missing:
            raise ValueError(f'prediction #{position} lacks {sorted(missing)}; each '
                             'prediction must be {"image_id": int, "caption": str}')
        if prediction['image_id'] in captions:
            raise ValueError(f'image_id {prediction["image_id"]!r} has more than one predicted '
                             'caption; keep one caption per image')
        captions[prediction['image_id']] = prediction['caption']
    return captions


def coco_caption_metrics(gt_file: str, predictions: Sequence[Mapping],
                         metrics: Iterable[str] = CAPTION_METRIC_FAMILIES) -> CaptionScores:
    """COCO caption metrics of ``[{"image_id", "caption"}]`` predictions against a gt file.

    Equals ``COCOEvalCap`` with ``params['image_id'] = cocoRes.getImgIds()`` (only the
    predicted images are scored), minus SPICE when it cannot run.
    """
    return score_captions(load_coco_references(gt_file), captions_by_image(predictions),
                          metrics)
