"""``python -m benchmarks.suite --device cpu --quick`` runs every measure and writes its files."""
import json

import pytest
import torch

from benchmarks import suite

pytestmark = pytest.mark.filterwarnings('ignore')


@pytest.mark.slow
def test_quick_cpu_suite_prints_and_writes_every_row(tmp_path, capsys):
    rows = suite.main(['--device', 'cpu', '--quick', '--protocol', '--out', str(tmp_path)])
    measures = {row.measure for row in rows}
    assert measures == {'image encoding vit_tiny_patch8', 'beam-3 captions', 'ITM re-rank',
                        'retrieval protocol end to end', 'pre-training step ITC+ITM+LM'}
    implementations = {row.implementation for row in rows}
    assert {'ours', 'timm', 'HF BLIP vision', 'HF generate', 'ours, best batch'} \
        <= implementations
    assert all(row.value > 0 for row in rows)
    assert all(row.mfu is None for row in rows)  # no CPU peak is claimed
    assert any('token-identical to HF: True' in row.notes for row in rows)
    notes = {row.implementation: row.notes for row in rows}
    assert 'tokens max abs difference' in notes['ours, bf16 weights']
    assert 'logit difference to ours packed' in notes['ours packed, bf16 weights (24 texts/pass)']
    assert 'timm, bf16 weights' in notes
    protocol = [row for row in rows if row.measure == 'retrieval protocol end to end']
    assert [row.settings.split(', ')[-1] for row in protocol] == ['fp32', 'bf16 weights']
    assert 'top-1 as under fp32: i2t' in protocol[1].notes
    report = json.loads((tmp_path / 'performance.json').read_text())
    assert report['environment']['device'] and report['environment']['torch']
    assert len(report['rows']) == len(rows)
    table = (tmp_path / 'performance.md').read_text()
    assert table.count('\n| ') == len(rows) + 1  # header + one line per row
    assert 'HF ITM path' in capsys.readouterr().out


def test_compile_adds_the_caption_row_with_a_compiled_vit(tmp_path, monkeypatch):
    compile_ = torch.compile  # Dynamo's graphs run eagerly: no C++ compiler needed
    monkeypatch.setattr(torch, 'compile', lambda model, **kw: compile_(model, backend='eager'))
    rows = suite.main(['--device', 'cpu', '--quick', '--only', 'caption', '--compile',
                       '--out', str(tmp_path)])
    best, compiled = rows[-2:]
    assert compiled.implementation == 'ours, static steps + torch.compile ViT, best batch'
    batch = best.settings.split()[1]
    assert compiled.settings.startswith(f'batch {batch}, ') and compiled.value > 0
    assert compiled.notes == f'captions identical to ours, static steps: {batch}/{batch}'


def test_mfu_uses_the_precision_peak():
    row = suite.Row('m', 'ours', value=1000.0, unit='img/s', settings='', precision='bf16',
                    gflops_per_item=98.9)
    assert row.fill_mfu(suite.PEAK_TFLOPS).mfu == pytest.approx(0.1)
    assert suite.Row('m', 'ours', 1.0, 'img/s', '', 'bf16').fill_mfu(suite.PEAK_TFLOPS).mfu \
        is None
