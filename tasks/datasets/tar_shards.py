"""WebDataset tar shards on local disk: naming shard lists, reading samples, writing shards.

The layout is WebDataset's (what ``img2dataset`` writes): ``NNNNN.tar`` holds samples as
consecutive members sharing a *key* (the member name up to the first dot of its base name),
one member per field, e.g. ``000000012.jpg``, ``000000012.txt``, ``000000012.json``. Beside
a shard, ``NNNNN_stats.json`` may give its sample count (img2dataset's ``successes``);
shards written here have one too, so readers need not scan the tar to size an epoch.

The standard library's :mod:`tarfile` does the reading and writing: the format needs
nothing more, and the readers need control over which shard is read when (resume).
"""
import glob
import io
import json
import os
import re
import tarfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from harness.core.files import atomic_write_bytes

IMAGE_EXTENSIONS = ('jpg', 'jpeg', 'png', 'webp', 'bmp')
STATS_SUFFIX = '_stats.json'
_BRACE = re.compile(r'\{(\d+)\.\.(\d+)\}|\{([^{}]*,[^{}]*)\}')


def expand_braces(pattern: str) -> List[str]:
    """The names a brace pattern stands for, in order.

    ``{00000..00003}`` is a zero-padded integer range (the width of the first bound) and
    ``{a,b}`` a choice; several braces expand as nested loops, left one outermost.
    """
    match = _BRACE.search(pattern)
    if not match:
        return [pattern]
    head, tail = pattern[:match.start()], pattern[match.end():]
    if match.group(3) is not None:
        choices = match.group(3).split(',')
    else:
        first, last = match.group(1), match.group(2)
        if int(last) < int(first):
            raise ValueError(f'shard pattern {pattern!r}: range {{{first}..{last}}} runs '
                             f'backwards; write the smaller bound first')
        choices = [f'{number:0{len(first)}d}' for number in range(int(first), int(last) + 1)]
    return [name for choice in choices for name in expand_braces(head + choice + tail)]


def resolve_shards(shards: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]],
                   root: Path) -> List[Path]:
    """The shard files named by ``shards``: a brace pattern, a glob, or a list of either.

    Relative names are relative to ``root``. Every file must exist (a missing shard is a
    configuration error, not a bad sample); globs are sorted and must match something.
    """
    patterns = [shards] if isinstance(shards, (str, os.PathLike)) else list(shards)
    paths: List[Path] = []
    for pattern in patterns:
        for name in expand_braces(str(pattern)):
            path = root / Path(name).expanduser()
            if glob.has_magic(str(path)):
                found = sorted(Path(p) for p in glob.glob(str(path)))
                if not found:
                    raise FileNotFoundError(f'shard glob {path} matches no file; check '
                                            f'data_root and the shards setting')
                paths.extend(found)
            elif not path.is_file():
                raise FileNotFoundError(f'shard {path} (from shards={pattern!r}) does not '
                                        f'exist; check data_root and the shard pattern')
            else:
                paths.append(path)
    if not paths:
        raise ValueError(f'shards={shards!r} names no shard file')
    return paths


def split_member_name(name: str) -> Tuple[str, str]:
    """``(key, field)`` of a member name: ``a/b/000012.jpg`` → ``('a/b/000012', 'jpg')``."""
    folder, _, base = name.rpartition('/')
    stem, _, field = base.partition('.')
    return (f'{folder}/{stem}' if folder else stem), field.lower()


def iter_samples(path: Path) -> Iterator[Tuple[str, Dict[str, bytes]]]:
    """Stream ``(key, {field: bytes})`` from one shard in member order.

    Members with the same key must be consecutive (as WebDataset requires); a damaged tar
    raises :class:`tarfile.TarError` (or ``OSError``) where the damage is met, after the
    samples before it were yielded.
    """
    key, fields = None, {}
    with tarfile.open(path, mode='r|*') as stream:
        for member in stream:
            if not member.isfile():
                continue
            member_key, field = split_member_name(member.name)
            if member_key != key and fields:
                yield key, fields
                fields = {}
            key = member_key
            fields[field] = stream.extractfile(member).read()
    if fields:
        yield key, fields


def index_members(path: Path) -> List[Tuple[str, Dict[str, Tuple[int, int]]]]:
    """``[(key, {field: (data offset, size)})]`` of one shard, read from its tar headers only.

    For random access (:func:`read_member`) by readers that need items by index.
    """
    samples: List[Tuple[str, Dict[str, Tuple[int, int]]]] = []
    with tarfile.open(path, mode='r:') as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            key, field = split_member_name(member.name)
            if not samples or samples[-1][0] != key:
                samples.append((key, {}))
            samples[-1][1][field] = (member.offset_data, member.size)
    return samples


def read_member(path: Path, offset: int, size: int) -> bytes:
    """The ``size`` bytes of a member's data at ``offset`` in shard ``path``."""
    with open(path, 'rb') as file:
        file.seek(offset)
        return file.read(size)


def stats_path(shard: Path) -> Path:
    """The side file giving a shard's sample count (``00012.tar`` → ``00012_stats.json``)."""
    return shard.with_name(shard.name.split('.')[0] + STATS_SUFFIX)


def sample_count(shard: Path) -> int:
    """Samples in ``shard``: its stats file's ``successes`` when present, else its key count."""
    stats = stats_path(shard)
    if stats.is_file():
        try:
            return int(json.loads(stats.read_text())['successes'])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f'{stats}: no integer "successes" field ({error}); delete the '
                             f'file to count the samples of {shard.name} from the tar') from error
    return len(index_members(shard))


def image_field(fields: Dict) -> Optional[str]:
    """The first image member of a sample (by :data:`IMAGE_EXTENSIONS` order), or None."""
    return next((ext for ext in IMAGE_EXTENSIONS if ext in fields), None)


def write_shard(path: Path, samples: Sequence[Tuple[str, Dict[str, bytes]]]) -> None:
    """Write ``[(key, {field: bytes})]`` as one shard and its stats file, atomically.

    Members are sorted by field within a sample and get fixed metadata (mtime 0, owner
    0, mode 0644), so the same samples always give the same bytes.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w', format=tarfile.USTAR_FORMAT) as archive:
        for key, fields in samples:
            if '.' in key.rpartition('/')[2]:
                raise ValueError(f'{path}: sample key {key!r} has a dot; WebDataset keys end '
                                 f'at the first dot of the base name')
            for field in sorted(fields):
                info = tarfile.TarInfo(f'{key}.{field}')
                info.size, info.mode, info.mtime = len(fields[field]), 0o644, 0
                archive.addfile(info, io.BytesIO(fields[field]))
    atomic_write_bytes(path, buffer.getvalue())
    atomic_write_bytes(stats_path(path), json.dumps(
        dict(count=len(samples), successes=len(samples)), sort_keys=True).encode() + b'\n')


def json_member(payload: dict) -> bytes:
    """A ``.json`` member: the payload as sorted, compact UTF-8 JSON."""
    return json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
