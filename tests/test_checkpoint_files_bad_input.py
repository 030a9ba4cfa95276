"""Checkpoint files that cannot be read: a CheckpointError naming the file and the fix."""
import json

import pytest
import torch
from hf_builders import tiny_blip, tiny_hf_blip
from safetensors.torch import save_file
from transformers import BlipForImageTextRetrieval

from backbones.checkpoint import CheckpointError, load_checkpoint

STATE = {'visual_encoder.cls_token': torch.zeros(1, 1, 4), 'itm_head.bias': torch.zeros(2)}


def _half(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _assert_named(error, path, *words):
    message = str(error)
    assert f'cannot read {path}' in message and 'Fix:' in message
    for word in words:
        assert word in message


@pytest.mark.parametrize('content, words', [
    (b'', ['empty']),
    (b'this is a text file\nnot weights\n', ['not a PyTorch checkpoint', 'this is a text']),
    (b'version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n', ['git lfs pull']),
], ids=['empty', 'text', 'lfs_pointer'])
def test_pth_that_is_not_a_checkpoint(tmp_path, content, words):
    path = tmp_path / 'model.pth'
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(tiny_blip(), path)
    _assert_named(raised.value, path, *words)


@pytest.mark.parametrize('zip_format', [True, False], ids=['zip', 'legacy'])
def test_truncated_pth(tmp_path, zip_format):
    path = tmp_path / 'model.pth'
    torch.save({'model': STATE}, path, _use_new_zipfile_serialization=zip_format)
    _half(path)
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(tiny_blip(), path)
    _assert_named(raised.value, path, 'truncated or corrupt', 're-download')


@pytest.mark.parametrize('keep', [0.5, 0.0005], ids=['half', 'header_cut'])
def test_truncated_safetensors(tmp_path, keep):
    path = tmp_path / 'model.safetensors'
    save_file(STATE, str(path))
    data = path.read_bytes()
    path.write_bytes(data[:max(1, int(len(data) * keep))])
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(tiny_blip(), path)
    _assert_named(raised.value, path, 'safetensors', 're-download')


@pytest.fixture(scope='module')
def hf_directory(tmp_path_factory):
    directory = tmp_path_factory.mktemp('hf_blip')
    tiny_hf_blip(BlipForImageTextRetrieval, seed=4).save_pretrained(directory)
    return directory


@pytest.mark.parametrize('config, words', [
    ('{"vision_config": {"layer_norm_eps": 1e-5', ['not valid UTF-8 JSON']),
    ('["a list"]', ['JSON list, not an object']),
    ('{"vision_config": 5}', ['"vision_config" is a int']),
    ('{"text_config": {"layer_norm_eps": "1e-12"}}', ['"text_config.layer_norm_eps"']),
], ids=['cut', 'list', 'section', 'eps'])
def test_malformed_hf_config_json(tmp_path, hf_directory, config, words):
    directory = tmp_path / 'hf'
    directory.mkdir()
    (directory / 'model.safetensors').write_bytes((hf_directory / 'model.safetensors').read_bytes())
    (directory / 'config.json').write_text(config)
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(tiny_blip(losses=('itc', 'itm')), directory)
    _assert_named(raised.value, directory / 'config.json', 'delete it', *words)


def test_config_json_in_utf16_is_named(tmp_path, hf_directory):
    directory = tmp_path / 'hf'
    directory.mkdir()
    (directory / 'model.safetensors').write_bytes((hf_directory / 'model.safetensors').read_bytes())
    config = (hf_directory / 'config.json').read_text()
    (directory / 'config.json').write_bytes(config.encode('utf-16'))
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(tiny_blip(losses=('itc', 'itm')), directory)
    _assert_named(raised.value, directory / 'config.json', 'UTF-8')


def test_malformed_shard_index(tmp_path):
    (tmp_path / 'model.safetensors.index.json').write_text('{"weight_map": {"a": ')
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(tiny_blip(), tmp_path)
    _assert_named(raised.value, tmp_path / 'model.safetensors.index.json', 're-download')


def test_hf_directory_without_config_json_says_eps_is_unchecked(tmp_path, hf_directory):
    directory = tmp_path / 'hf'
    directory.mkdir()
    (directory / 'model.safetensors').write_bytes((hf_directory / 'model.safetensors').read_bytes())
    model = tiny_blip(losses=('itc', 'itm'))
    report = load_checkpoint(model, directory)
    [note] = [n for n in report.notes if 'config.json' in n]
    assert str(directory) in note and 'cannot check layer_norm_eps' in note
    assert 'keeps its configured eps' in note and not report.changed
    assert 'config.json' in str(report)

    with_config = load_checkpoint(tiny_blip(losses=('itc', 'itm')), hf_directory)
    assert not any('config.json' in n for n in with_config.notes)


def test_config_json_is_still_read(hf_directory):
    config = json.loads((hf_directory / 'config.json').read_text())
    report = load_checkpoint(tiny_blip(losses=('itc', 'itm')), hf_directory)
    expected = config['vision_config'].get('layer_norm_eps', 1e-5)
    assert any(change.checkpoint_value == expected for change in report.changed)
