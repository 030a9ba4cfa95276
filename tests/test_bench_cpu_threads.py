"""benchmarks.bench_cpu_threads: its product recorder, labels, replay and report."""
import os

import torch

from benchmarks import bench_cpu_threads as bench


def test_recorder_keeps_products_with_their_layout_and_labels_them():
    weight = torch.randn(4, 3, requires_grad=True)
    x = torch.randn(5, 3)
    recorder = bench.ProductRecorder()
    with recorder:  # a dense output gradient, as a loss gives
        (torch.nn.functional.linear(x, weight, torch.zeros(4)) * torch.randn(5, 4)).sum().backward()
    labels = [bench.product_label(func, args) for func, args, _ in recorder.calls]
    # the forward addmm reads the weight transposed; the backward's weight gradient is
    # grad^T @ x, its first operand read transposed
    assert labels[0] == 'addmm 5x3 @ 3x4T'
    assert 'mm 4x5T @ 5x3' in labels
    func, args, kwargs = recorder.calls[0]
    assert args[2].stride() == weight.t().stride()  # the copy keeps the transposed layout
    assert torch.equal(func(*args, **kwargs), torch.addmm(torch.zeros(4), x, weight.t()))


def test_rows_count_calls_and_compare_the_two_thread_counts():
    threads = torch.get_num_threads()
    a, b = torch.randn(8, 6), torch.randn(6, 7)
    calls = [(torch.ops.aten.mm.default, [a, b], {})] * 3
    try:
        rows = bench.product_rows(calls, repeats=2)
    finally:
        torch.set_num_threads(threads)
    assert len(rows) == 1
    label, count, two, one, same = rows[0]
    assert (label, count, same) == ('mm 8x6 @ 6x7', 3, True)  # too small to split
    assert two > 0 and one > 0


def test_report_totals_each_group_per_step():
    rows = [('mm a', 2, 1.0, 0.5, True), ('mm b', 3, 2.0, 1.0, False)]
    times = dict(zip((setting.name for setting in bench.STEP_SETTINGS),
                     ([0.4, 0.5, 0.6], [0.3, 0.4, 0.5], [0.2, 0.25, 0.3])))
    text = bench.report(rows, times, True, 'title')
    assert text.startswith('title\n')
    assert 'products whose bits agree: 2.0 ms a step at 2 threads, 1.0 at 1 (2.00x)' in text
    assert 'products whose bits differ: 6.0 ms a step at 2 threads, 3.0 at 1 (2.00x)' in text
    assert '  2 threads: 500.0 ms (1.00x)' in text
    assert '  2 threads, one-thread weight gradients: 400.0 ms (1.25x)' in text
    assert '  1 thread: 250.0 ms (2.00x)' in text
    assert text.endswith('same weights with and without one-thread weight gradients: True')


def test_benchmark_runs_as_a_main_job_child(capfd):
    assert bench.main(['--repeats', '1', '--steps', '1', '--rounds', '1']) == 0
    out = capfd.readouterr().out
    assert "The main job's `all` variant, one pre-training step (batch 32), CPUs [" in out
    # the children's environment: passive OpenMP waits unless the user chose
    assert f'OMP_WAIT_POLICY={os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}' in out
    assert '| addmm ' in out and '| mm ' in out
    assert 'products whose bits agree: ' in out and 'whole step (medians of 1 ' in out
    # the one-thread weight gradients train to the same weights as the plain layers
    assert 'same weights with and without one-thread weight gradients: True' in out
