"""Retrieval recall from score matrices, as BLIP's itm_eval."""
import numpy as np
import pytest

from tasks.metrics import best_ranks, retrieval_metrics

KEYS = ['TR@1', 'TR@5', 'TR@10', 'IR@1', 'IR@5', 'IR@10', 'TR_mean', 'IR_mean', 'R_mean']


def blip_itm_eval(scores_i2t, scores_t2i, txt2img, img2txt):
    """BLIP's itm_eval loop, restated for the comparison (default numpy sort)."""
    def recalls(ranks):
        return [100.0 * len(np.where(ranks < k)[0]) / len(ranks) for k in (1, 5, 10)]
    ranks = np.zeros(scores_i2t.shape[0])
    for index, score in enumerate(scores_i2t):
        inds = np.argsort(score)[::-1]
        ranks[index] = min(np.where(inds == i)[0][0] for i in img2txt[index])
    tr = recalls(ranks)
    ranks = np.zeros(scores_t2i.shape[0])
    for index, score in enumerate(scores_t2i):
        ranks[index] = np.where(np.argsort(score)[::-1] == txt2img[index])[0][0]
    ir = recalls(ranks)
    tr_mean, ir_mean = sum(tr) / 3, sum(ir) / 3
    return dict(zip(KEYS, tr + ir + [tr_mean, ir_mean, (tr_mean + ir_mean) / 2]))


def test_identity_scores_give_full_recall():
    n = 12
    scores = np.eye(n)
    metrics = retrieval_metrics(scores, scores.T, [[i] for i in range(n)], list(range(n)))
    assert list(metrics) == KEYS
    assert all(value == 100.0 for value in metrics.values())


def test_one_image_whose_text_is_fourth_loses_only_r_at_1():
    n = 20
    scores = np.eye(n) + 0.0
    scores[0, [1, 2, 3]] = [3.0, 2.5, 2.0]          # image 0's own text now at rank 3
    metrics = retrieval_metrics(scores, np.eye(n), [[i] for i in range(n)], list(range(n)))
    assert metrics['TR@1'] == pytest.approx(100.0 * (n - 1) / n)
    assert metrics['TR@5'] == metrics['TR@10'] == 100.0
    assert metrics['IR@1'] == 100.0


def test_multiple_captions_per_image_use_the_best_rank():
    # 2 images × 4 texts; image 0 owns texts 0 and 1, image 1 owns texts 2 and 3.
    scores_i2t = np.array([[0.1, 0.9, 0.5, 0.2],     # text 1 ranks first → rank 0
                           [0.8, 0.1, 0.2, 0.7]])    # best own text (3) at rank 1
    assert best_ranks(scores_i2t, [[0, 1], [2, 3]]).tolist() == [0, 1]
    scores_t2i = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    metrics = retrieval_metrics(scores_i2t, scores_t2i, [[0, 1], [2, 3]], [0, 0, 1, 1])
    assert metrics['TR@1'] == 50.0 and metrics['TR@5'] == 100.0
    assert metrics['IR@1'] == 75.0 and metrics['IR@5'] == 100.0
    assert metrics['R_mean'] == pytest.approx(((50 + 100 + 100) / 3 + (75 + 100 + 100) / 3) / 2)


def test_equals_blip_itm_eval_without_ties():
    rng = np.random.default_rng(0)
    n_img, captions_per_image = 30, 5
    n_txt = n_img * captions_per_image
    img2txt = [list(range(i * captions_per_image, (i + 1) * captions_per_image))
               for i in range(n_img)]
    txt2img = [t // captions_per_image for t in range(n_txt)]
    sims = rng.normal(size=(n_img, n_txt)) + 2.0 * np.eye(n_img).repeat(captions_per_image, 1)
    ours = retrieval_metrics(sims, sims.T, img2txt, txt2img)
    assert ours == blip_itm_eval(sims, sims.T, txt2img, img2txt)


def test_ties_rank_the_higher_index_first():
    # BLIP's -100 fill: image 0's text (index 1) ties with texts 0, 2 and 3.
    scores = np.full((1, 6), -100.0)
    scores[0, [4, 5]] = [5.0, 4.0]
    assert best_ranks(scores, [[1]]).tolist() == [4]    # after 4, 5, then 3, 2 → position 4
    assert best_ranks(scores, [[3]]).tolist() == [2]


def test_shape_mismatch_and_imageless_query_are_errors():
    with pytest.raises(ValueError, match='scores_t2i has shape'):
        retrieval_metrics(np.eye(2), np.eye(3), [[0], [1]], [0, 1])
    with pytest.raises(ValueError, match='no ground-truth match'):
        retrieval_metrics(np.eye(2), np.eye(2), [[0], []], [0, 1])
