"""``torchrun -m benchmarks.bench_scaling`` with 1 and 2 gloo processes (tiny shapes): the
protocol's scores and CapFilt's captions do not depend on the number of processes."""
import os
import subprocess
import sys

import pytest

from benchmarks.bench_scaling import scaling_rows

TINY = ['--shape', 'tiny', '--train-batch', '4', '--train-steps', '2', '--protocol-images',
        '24', '--web-images', '40', '--caption-batch', '8', '--shard-size', '8']


@pytest.mark.slow
def test_one_and_two_processes_give_the_same_scores_and_captions(tmp_path):
    for processes in (1, 2):
        subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
                        str(processes), '--master_port', str(29610 + processes), '-m',
                        'benchmarks.bench_scaling', *TINY, '--out', str(tmp_path)],
                       check=True, capture_output=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    header, *rows = [line for line in scaling_rows(tmp_path) if line.startswith('| ')]
    columns = [cell.strip() for cell in header.strip('|').split('|')]
    two = dict(zip(columns, [cell.strip() for cell in rows[-1].strip('|').split('|')]))
    assert two['processes'] == '2'
    assert two['same scores'] == 'True' and two['same captions'] == 'True'
    assert float(two['pre-training img/s']) > 0 and float(two['efficiency']) > 0
