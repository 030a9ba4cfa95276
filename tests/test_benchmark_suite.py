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
    assert 'top-1 as fp32: i2t' in protocol[1].notes
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


def test_compile_adds_protocol_runs_with_compiled_layers():
    runs = suite.protocol_runs(bf16=True, compile_layers=True)
    assert list(runs) == ['bf16', 'bf16 + compiled layers', 'bf16 weights',
                          'bf16 weights + compiled layers']
    assert runs['bf16 weights + compiled layers'] == dict(weights_dtype='bfloat16',
                                                          compile_layers=True)
    assert list(suite.protocol_runs(bf16=False, compile_layers=False)) == ['fp32', 'bf16 weights']
    assert list(suite.protocol_runs(True, True, ['bf16 weights', 'bf16 + compiled layers'])) \
        == ['bf16 weights', 'bf16 + compiled layers']
    with pytest.raises(SystemExit, match='need --compile'):
        suite.protocol_runs(True, False, ['bf16 + compiled layers'])


def test_protocol_runs_can_be_picked_and_repeated(tmp_path):
    rows = suite.main(['--device', 'cpu', '--quick', '--only', 'protocol', '--protocol-runs',
                       'fp32', '--protocol-repeats', '2', '--out', str(tmp_path)])
    assert [row.settings.split(', ')[-2:] for row in rows] == [['24 texts/pass', 'fp32'],
                                                               ['fp32', 'run 2']]
    assert rows[1].notes.endswith('top-1 as fp32: i2t 100.0%, t2i 100.0%')  # CPU: same bits
    with pytest.raises(SystemExit):
        suite.parse_args(['--protocol-repeats', '0'])


def test_mfu_uses_the_precision_peak():
    row = suite.Row('m', 'ours', value=1000.0, unit='img/s', settings='', precision='bf16',
                    gflops_per_item=98.9)
    assert row.fill_mfu(suite.PEAK_TFLOPS).mfu == pytest.approx(0.1)
    assert suite.Row('m', 'ours', 1.0, 'img/s', '', 'bf16').fill_mfu(suite.PEAK_TFLOPS).mfu \
        is None


def test_training_rows_include_the_whole_step_path_and_its_padding(tmp_path):
    rows = suite.main(['--device', 'cpu', '--quick', '--only', 'train', '--out', str(tmp_path)])
    assert [row.settings.split(', ')[2:4] for row in rows] == [['fp32', 'foreach AdamW'],
                                                               ['fp32', 'whole step']]
    assert rows[1].settings.endswith('texts padded to a multiple of 8 tokens')
    assert all(row.value > 0 and row.precision == 'fp32' for row in rows)
    labels = [s.label for s in suite.train_settings(torch.device('cuda'), compile_layers=True)]
    assert labels == ['fp32', 'tf32', 'bf16', 'bf16, whole-step CUDA graph',
                      'bf16, whole-step CUDA graph, image K/V once',
                      'bf16 + compiled layers', 'bf16 + compiled layers, CUDA graphs',
                      'bf16 + compiled layers, whole-step CUDA graph',
                      'bf16 + compiled layers, whole-step CUDA graph, image K/V once']


def test_train_loop_benchmark_times_both_loops():
    from benchmarks import bench_train_loop
    lines = bench_train_loop.main(['--device', 'cpu', '--batch', '4', '--steps', '1',
                                   '--reuse-image-kv'])
    assert [line.split()[0] for line in lines] == ['eager', 'whole', 'whole']
    assert 'image K/V once' in lines[0] and lines[-1].endswith('x')
    assert all(float(line.split('img/s')[0].split()[-1]) > 0 for line in lines[:2])


def test_lm_loss_benchmark_trains_both_losses_to_the_same_weights(capsys):
    from benchmarks import bench_lm_loss
    result = bench_lm_loss.main(['--steps', '1', '--rounds', '1', '--repeats', '1'])
    assert result['same_weights']
    assert set(result['ms_per_step']) == {'F.cross_entropy', 'ours'}
    assert 'same weights after training: True' in capsys.readouterr().out
    assert bench_lm_loss.med.shifted_smoothed_cross_entropy is \
        bench_lm_loss.IMPLEMENTATIONS['ours']  # restored
