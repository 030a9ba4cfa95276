"""Deterministic JSON / JSON-lines writing (same object → same bytes)."""
import json
import pathlib


def write_json(path: pathlib.Path, obj) -> None:
    """Write ``obj`` as compact UTF-8 JSON, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding='utf-8')


def write_jsonl(path: pathlib.Path, records: list) -> None:
    """Write one JSON object per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(record, ensure_ascii=False) + '\n' for record in records]
    path.write_text(''.join(lines), encoding='utf-8')
