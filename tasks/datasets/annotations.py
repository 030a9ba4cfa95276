"""Loading annotation files and checking every record's fields when a dataset is built."""
import dataclasses
import json
import pathlib
from typing import Any, Callable, Optional

from ..text import pre_caption
from .errors import bad_sample


@dataclasses.dataclass(frozen=True)
class FieldType:
    """What a field must hold: a test and the words used in error messages."""

    description: str
    accepts: Callable[[Any], bool]


def _is_text(value) -> bool:
    return isinstance(value, str) and value.strip() != ''


def is_integer(value) -> bool:
    """Whether ``value`` is an integer (JSON's ``true``/``false`` load as bools, not ids)."""
    return isinstance(value, int) and not isinstance(value, bool)


TEXT = FieldType('a non-empty string', _is_text)
TEXTS = FieldType('a non-empty list of non-empty strings',
                  lambda v: isinstance(v, list) and len(v) > 0 and all(map(_is_text, v)))
TEXT_OR_TEXTS = FieldType('a non-empty string or a non-empty list of them',
                          lambda v: _is_text(v) or TEXTS.accepts(v))
INTEGER = FieldType('an integer', is_integer)
IDENTIFIER = FieldType('a string or an integer', lambda v: _is_text(v) or is_integer(v))


UTF8_FIX = ('annotation files must be UTF-8 JSON: save the file as UTF-8 (e.g. `iconv -f {} '
            '-t UTF-8 in.json > out.json`).')


def _not_utf8(data: bytes) -> tuple[str, str]:
    """``(what the file looks like, fix)`` for bytes that are not UTF-8."""
    sample = data[:4096]
    if sample[:2] in (b'\xff\xfe', b'\xfe\xff') or \
            max(sample[0::2].count(0), sample[1::2].count(0)) > len(sample) // 4:
        return 'UTF-16 text', UTF8_FIX.format('UTF-16')
    if any(byte < 9 for byte in sample):
        return 'a binary file, not text', 'pass the JSON annotation file (check ann_file).'
    return 'latin-1 / Windows-1252 text', UTF8_FIX.format('WINDOWS-1252')


def read_annotation_text(path: pathlib.Path) -> str:
    """The text of an annotation file, which must be UTF-8; BadSampleError otherwise."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise bad_sample(path, f'cannot read the annotation file ({error.strerror}).',
                         'check data_root and ann_file, or generate the data set.') from error
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as error:
        looks_like, fix = _not_utf8(data)
        raise bad_sample(path, f'the file is not UTF-8 (byte 0x{data[error.start]:02x} at '
                         f'offset {error.start}); it looks like {looks_like}.', fix) from error
    if '\x00' in text:  # valid UTF-8 that JSON never holds: UTF-16 without a byte-order mark
        looks_like, fix = _not_utf8(data)
        raise bad_sample(path, f'the file is not UTF-8 text (NUL byte at offset '
                         f'{text.index(chr(0))}); it looks like {looks_like}.', fix)
    return text


def load_json(path: pathlib.Path) -> Any:
    """Parse a JSON file, turning a missing, non-UTF-8 or malformed file into a BadSampleError."""
    text = read_annotation_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise bad_sample(path, f'malformed JSON at line {error.lineno}, column {error.colno}: '
                         f'{error.msg}.', 'repair or re-download/regenerate the file.') from error


def load_jsonl(path: pathlib.Path) -> list:
    """Parse a JSON-lines file (one record per non-empty line)."""
    lines = read_annotation_text(path).splitlines()
    records = []
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise bad_sample(path, f'line {line_number} is not valid JSON ({error.msg}).',
                             'each line must hold one JSON object; repair the line.',
                             record_index=len(records)) from error
    return records


def load_records(path: pathlib.Path) -> list:
    """The records of a ``.json`` file holding a list, or of a ``.jsonl`` file."""
    records = load_jsonl(path) if path.suffix == '.jsonl' else load_json(path)
    if not isinstance(records, list):
        raise bad_sample(path, f'the top level is a {type(records).__name__}, not a list of '
                         'records.', 'pass a file whose top level is a JSON list.')
    if not records:
        raise bad_sample(path, 'the file holds no records.', 'pass a non-empty file.')
    return records


def check_records(path: pathlib.Path, records: list, required: dict[str, FieldType],
                  optional: Optional[dict[str, FieldType]] = None, kind: str = 'records'
                  ) -> None:
    """Raise a BadSampleError for the first record that lacks a field or has a wrong type.

    Args:
        path: the file, for messages.
        records: the parsed records.
        required: field name → type every record must have.
        optional: field name → type a record may have.
        kind: what the file is, for messages (e.g. 'COCO-Karpathy train').
    """
    optional = optional or {}
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise bad_sample(path, f'the record is a {type(record).__name__}, not an object.',
                             f'{kind} records are JSON objects with fields '
                             f'{sorted(required)}.', record_index=index)
        for name, field_type in required.items():
            if name not in record:
                raise bad_sample(path, f'field {name!r} is missing (the record has '
                                 f'{sorted(record)}).', f'every {kind} record needs {name!r} '
                                 f'({field_type.description}); repair the record.',
                                 record_index=index)
        for name, field_type in {**required, **optional}.items():
            if name in record and not field_type.accepts(record[name]):
                raise bad_sample(path, f'field {name!r} holds {record[name]!r:.80}, not '
                                 f'{field_type.description}.', f'{kind} records need '
                                 f'{name!r} to be {field_type.description}.',
                                 record_index=index)


def cleaned_caption(caption: str, max_words: int, path: pathlib.Path, record_index: int) -> str:
    """BLIP's cleaning of ``caption``; BadSampleError when nothing is left of it."""
    cleaned = pre_caption(caption, max_words)
    if not cleaned:
        raise bad_sample(path, f'caption {caption!r:.80} is empty once cleaned (BLIP removes '
                         '.!"()*#:;~ and surrounding spaces).', 'write a caption with at least '
                         "one word, or drop it (or pass on_bad_sample='skip').",
                         record_index=record_index)
    return cleaned
