"""Loading annotation files and checking every record's fields when a dataset is built."""
import dataclasses
import json
import pathlib
from typing import Any, Callable, Optional

from .errors import bad_sample


@dataclasses.dataclass(frozen=True)
class FieldType:
    """What a field must hold: a test and the words used in error messages."""

    description: str
    accepts: Callable[[Any], bool]


def _is_text(value) -> bool:
    return isinstance(value, str) and value.strip() != ''


TEXT = FieldType('a non-empty string', _is_text)
TEXTS = FieldType('a non-empty list of non-empty strings',
                  lambda v: isinstance(v, list) and len(v) > 0 and all(map(_is_text, v)))
TEXT_OR_TEXTS = FieldType('a non-empty string or a non-empty list of them',
                          lambda v: _is_text(v) or TEXTS.accepts(v))
IDENTIFIER = FieldType('a string or an integer',
                       lambda v: _is_text(v) or (isinstance(v, int) and not isinstance(v, bool)))


def load_json(path: pathlib.Path) -> Any:
    """Parse a JSON file, turning a missing or malformed file into a BadSampleError."""
    try:
        text = path.read_text(encoding='utf-8')
    except OSError as error:
        raise bad_sample(path, f'cannot read the annotation file ({error.strerror}).',
                         'check data_root and ann_file, or generate the data set.') from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise bad_sample(path, f'malformed JSON at line {error.lineno}, column {error.colno}: '
                         f'{error.msg}.', 'repair or re-download/regenerate the file.') from error


def load_jsonl(path: pathlib.Path) -> list:
    """Parse a JSON-lines file (one record per non-empty line)."""
    try:
        lines = path.read_text(encoding='utf-8').splitlines()
    except OSError as error:
        raise bad_sample(path, f'cannot read the annotation file ({error.strerror}).',
                         'check data_root and ann_file, or generate the data set.') from error
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
