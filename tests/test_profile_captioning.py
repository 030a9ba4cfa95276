"""``python -m benchmarks.profile_captioning`` splits captioning time into its parts."""
import pytest

from backbones import few_query_kernel, row_topk
from benchmarks import profile_captioning
from benchmarks.profile_captioning import CaptionTimes

pytestmark = pytest.mark.filterwarnings('ignore')


def test_bookkeeping_is_the_decoding_time_left_after_its_measured_parts():
    times = CaptionTimes(batch=8, encode=30.0, setup=5.0, prompt=3.0, steps=10, step=2.0,
                         decode=40.0)
    assert times.bookkeeping == 12.0
    assert times.images_per_s == pytest.approx(8 / 0.070)
    assert '10 steps x 2.00 + beam bookkeeping 12.0' in times.line()


def test_cpu_smoke_run_times_every_part(capsys):
    results = profile_captioning.main(['--device', 'cpu', '--batch', '2', '--repeats', '1'])
    assert [result.batch for result in results] == [2]
    result = results[0]
    prompt_tokens = 4  # [DEC] a picture of
    assert 1 <= result.steps <= 20 - prompt_tokens - 1  # max_length counts the prompt
    assert min(result.encode, result.setup, result.prompt, result.step, result.decode) > 0
    assert 'batch 2:' in capsys.readouterr().out


def test_without_kernels_empties_the_kernels_devices_for_the_run_only(monkeypatch):
    seen = []
    times = profile_captioning.caption_times
    monkeypatch.setattr(profile_captioning, 'caption_times', lambda *args: seen.append(
        (few_query_kernel.DEVICES, row_topk.DEVICES)) or times(*args))
    profile_captioning.main(['--device', 'cpu', '--batch', '2', '--repeats', '1',
                             '--without-kernels'])
    assert seen == [((), ())]
    assert few_query_kernel.DEVICES == row_topk.DEVICES == ('cuda',)
    profile_captioning.main(['--device', 'cpu', '--batch', '2', '--repeats', '1'])
    assert seen[-1] == (('cuda',), ('cuda',))
