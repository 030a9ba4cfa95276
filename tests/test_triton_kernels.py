"""Our Triton kernels: few-query attention (``backbones/few_query_kernel.py``) and row
top-k (``backbones/row_topk.py``).

The kernels run here through Triton's interpreter on CPU tensors (``triton_interpreted.py``,
in a subprocess, since the interpreter is chosen when Triton is imported). Attention must
stay within twice the fp32 reference's own rounding to the case's dtype (plus 1e-4), and a
static decoding step must route its attentions through it and stay as close to fp32
decoding as the path it replaces; top-k must select ``torch.topk``'s
values, and beam search through it must return the same ids.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from backbones import few_query_kernel as fqa
from backbones import row_topk

TESTS = Path(__file__).parent


@pytest.fixture(scope='module')
def interpreted():
    """What ``triton_interpreted.py`` measured, run interpreted."""
    path = [str(TESTS.parent), str(TESTS)] + [os.environ.get('PYTHONPATH', '')]
    env = dict(os.environ, TRITON_INTERPRET='1', PYTHONPATH=os.pathsep.join(path))
    done = subprocess.run([sys.executable, str(TESTS / 'triton_interpreted.py')], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_kernel_errors_stay_near_the_dtypes_own_rounding(interpreted):
    cases = interpreted['cases']
    assert len(cases) == 16
    for case in cases:
        assert case['shape_kept'] and case['out_layout_contiguous'], case
        if 'float32' in case['case']:
            assert case['kernel'] < 1e-5, case
        else:
            assert case['kernel'] <= 2 * case['rounding'] + 1e-4, case


def test_static_decoding_attends_through_the_kernel(interpreted):
    decoding = interpreted['decoding']
    # The prompt's cross-attention (one row per image) in every layer, then every step (3
    # of them) each layer's self- (1 row per image) and cross-attention (3 beams per image).
    layers = decoding['layers']
    assert decoding['kernel_calls'] == [1] * layers + [1, 3] * layers * 3
    assert decoding['kernel'] <= 2 * decoding['plain'] + 1e-3, decoding


def head_split(rows, length, heads, dim, dtype=torch.float16):
    """A ``[rows, H, L, D]`` head-split view of a ``[rows, L, H*D]`` projection."""
    return torch.zeros(rows, length, heads * dim, dtype=dtype).unflatten(
        -1, (heads, dim)).transpose(1, 2)


def test_the_kernel_serves_only_where_it_is_built_for(monkeypatch):
    keys = torch.zeros(2, 2, 30, 16, dtype=torch.float16)
    query = head_split(6, 1, 2, 16)
    assert not fqa.serves(query, keys, 3)  # CPU tensors: not compiled
    monkeypatch.setattr(fqa, 'DEVICES', ('cpu',))
    assert fqa.serves(query, keys, 3)
    assert not fqa.serves(query.float(), keys.float(), 3)  # fp32
    assert not fqa.serves(query, keys.bfloat16(), 3)  # mixed dtypes
    assert not fqa.serves(head_split(6, 6, 2, 16), keys, 3)  # 18 > 16
    assert not fqa.serves(head_split(6, 1, 2, 24), torch.zeros(2, 2, 30, 24).half(), 3)
    per_image, shared = torch.zeros(2, 1, 1, 30).half(), torch.zeros(1, 1, 1, 30).half()
    assert fqa.serves(query, keys, 3, per_image) and fqa.serves(query, keys, 3, shared)
    assert not fqa.serves(query, keys, 3, torch.zeros(2, 2, 1, 30).half())  # per head
    assert not fqa.serves(query, keys, 3, torch.zeros(2, 1, 4, 30).half())  # per query
    assert not fqa.serves(query, keys, 3, torch.zeros(2, 1, 1, 29).half())  # wrong keys
    assert not fqa.serves(query, keys, 3, torch.zeros(2, 1, 1, 60).half()[..., ::2])  # strided


def test_key_rows_serve_only_one_query_per_row_over_a_short_cache(monkeypatch):
    monkeypatch.setattr(fqa, 'DEVICES', ('cpu',))
    cache = torch.zeros(6, 2, 20, 16, dtype=torch.float16)
    rows = torch.zeros(6, 20, dtype=torch.long)
    assert fqa.serves(head_split(6, 1, 2, 16), cache, 1, None, rows)
    assert not fqa.serves(head_split(6, 2, 2, 16), cache, 1, None, rows)  # two positions
    assert not fqa.serves(head_split(6, 1, 2, 16), cache[:3], 2, None, rows[:3])  # 2 per row
    long_cache = torch.zeros(6, 2, fqa.SHORT_CACHE_TOKENS + 1, 16, dtype=torch.float16)
    long_rows = torch.zeros(6, fqa.SHORT_CACHE_TOKENS + 1, dtype=torch.long)
    assert fqa.serves(head_split(6, 1, 2, 16), long_cache, 1)
    assert not fqa.serves(head_split(6, 1, 2, 16), long_cache, 1, None, long_rows)
    assert not fqa.serves(head_split(6, 1, 2, 16), cache, 1, None, rows.int())
    assert not fqa.serves(head_split(6, 1, 2, 16), cache, 1, None, rows[:, :19])
    assert not fqa.serves(head_split(6, 1, 2, 16), cache, 1, None,
                          torch.zeros(20, 6, dtype=torch.long).t())  # not contiguous
    with pytest.raises(ValueError, match='key_rows serve one query per row'):
        fqa.few_query_attention(head_split(6, 1, 2, 16), long_cache, long_cache, 1, None,
                                long_rows)


def test_rows_must_be_a_whole_number_per_image():
    keys = torch.zeros(2, 2, 30, 16, dtype=torch.float16)
    with pytest.raises(ValueError, match='not 3 per image for 2 images'):
        fqa.few_query_attention(head_split(5, 1, 2, 16), keys, keys, 3)


def test_row_topk_selects_what_torch_topk_selects(interpreted):
    cases = interpreted['topk']
    assert len(cases) == 5
    for case in cases:
        assert case['values'] and case['found_there'] and case['distinct'], case
        assert case['ties_by_index'], case


def test_beam_search_through_row_topk_returns_the_same_ids(interpreted):
    beam = interpreted['beam']
    assert beam['kernel_calls'] >= 3  # one per step: prompt + up to max_length
    assert beam['same_ids'], beam
    assert len({tuple(row) for row in beam['ids']}) > 1  # captions differ between images


def test_row_topk_serves_float32_rows_on_its_devices(monkeypatch):
    scores = torch.zeros(3, 100)
    assert not row_topk.serves(scores, 6)  # CPU tensors: not compiled
    monkeypatch.setattr(row_topk, 'DEVICES', ('cpu',))
    assert row_topk.serves(scores, 6)
    assert not row_topk.serves(scores.half(), 6)
    assert not row_topk.serves(scores, 17)  # more than MAX_K
    assert not row_topk.serves(scores.t(), 6)  # rows not contiguous
    assert not row_topk.serves(torch.zeros(3, 4), 6)  # k > columns
