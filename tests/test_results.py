"""Results store: atomic appends, readable errors, collection across work dirs."""
import json

import pytest

from harness import results
from harness.results import (ResultRecord, append_record, collect_records, config_hash,
                             git_revision, read_records, records_to_frame)


def _record(variant: str = 'all', seed: int = 0, cider: float = 120.0) -> ResultRecord:
    return ResultRecord(experiment='sharing', variant=variant, task='caption',
                        dataset='toyworld_coco', split='test',
                        metrics={'CIDEr': cider, 'BLEU-4': 30.0}, params=1000, seed=seed,
                        throughput={'images/s': 50.0})


def test_append_then_read_round_trips(tmp_path):
    first, second = _record(seed=0), _record(seed=1)
    append_record(tmp_path, first)
    append_record(tmp_path, second)
    assert read_records(tmp_path / 'results.jsonl') == [first, second]


def test_crash_before_replace_leaves_old_file_intact(tmp_path, monkeypatch):
    append_record(tmp_path, _record(seed=0))
    before = (tmp_path / 'results.jsonl').read_bytes()

    def crash(*args):
        raise KeyboardInterrupt('killed between temp write and replace')

    monkeypatch.setattr(results.os, 'replace', crash)
    with pytest.raises(KeyboardInterrupt):
        append_record(tmp_path, _record(seed=1))
    assert (tmp_path / 'results.jsonl').read_bytes() == before
    assert not list(tmp_path.glob('*.tmp')), 'temp file must be cleaned up'


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / 'results.jsonl'
    path.write_text(_record().to_json() + '\n{"experiment": "sharing",\n')
    with pytest.raises(ValueError, match=r'results\.jsonl:2: malformed JSON'):
        read_records(path)


def test_missing_field_is_named(tmp_path):
    path = tmp_path / 'results.jsonl'
    data = json.loads(_record().to_json())
    del data['split']
    path.write_text(json.dumps(data) + '\n')
    message = r"results\.jsonl:1: missing required field\(s\) \['split'\]"
    with pytest.raises(ValueError, match=message):
        read_records(path)


def test_collect_across_two_work_dirs_and_flatten(tmp_path):
    append_record(tmp_path / 'a' / 'all', _record('all'))
    append_record(tmp_path / 'b' / 'deep' / 'none', _record('none', cider=110.0))
    records = collect_records([tmp_path / 'a', tmp_path / 'b'])
    assert sorted(record.variant for record in records) == ['all', 'none']
    frame = records_to_frame(records)
    assert {'metrics.CIDEr', 'metrics.BLEU-4', 'throughput.images/s'} <= set(frame.columns)
    assert sorted(frame['metrics.CIDEr']) == [110.0, 120.0]


def test_collect_names_a_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match='does-not-exist'):
        collect_records([tmp_path / 'does-not-exist'])


def test_config_hash_ignores_key_order_and_tuple_vs_list():
    assert config_hash({'a': 1, 'b': (1, 2)}) == config_hash({'b': [1, 2], 'a': 1})
    assert config_hash({'a': 1}) != config_hash({'a': 2})


def test_git_revision_outside_git_is_unknown(tmp_path):
    assert git_revision(tmp_path) == 'unknown'
