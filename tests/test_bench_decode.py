"""``python -m benchmarks.bench_decode --device cpu`` runs both paths and writes its rows."""
import json

import pytest
from PIL import Image

from benchmarks import bench_decode

pytestmark = pytest.mark.filterwarnings('ignore')


def test_cpu_smoke_run_measures_every_loader(tmp_path, capsys):
    rows = bench_decode.main(['--device', 'cpu', '--count', '6', '--width', '64', '--height',
                              '48', '--size', '32', '--batch-size', '4', '--workers', '0', '2',
                              '--device-workers', '0', '--repeats', '1',
                              '--json', str(tmp_path / 'decode.json')])
    assert [row.implementation for row in rows] == ['PIL on CPU, 0 workers',
                                                    'PIL on CPU, 2 workers',
                                                    'decode on cpu, 0 workers']
    assert all(row.value > 0 and row.unit == 'img/s' for row in rows)
    assert rows[-1].notes.startswith('vs PIL: max ')
    assert '6 JPEGs 64x48' in rows[0].settings
    written = json.loads((tmp_path / 'decode.json').read_text())
    assert [row['implementation'] for row in written['rows']] == \
        [row.implementation for row in rows]
    assert 'x PIL 0 workers' in capsys.readouterr().out


def test_synthetic_jpegs_have_the_asked_size_and_a_photo_like_weight(tmp_path):
    total = bench_decode.write_images(tmp_path, 3, 640, 480)
    records = json.loads((tmp_path / 'test.json').read_text())
    assert len(records) == 3 and 100e3 < total / 3 < 250e3  # COCO's average is ~160 kB
    assert Image.open(tmp_path / records[0]['image']).size == (640, 480)
