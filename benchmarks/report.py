"""The performance table of :mod:`benchmarks.suite`: rows, MFU, and its JSON/Markdown files.

A row is one implementation's rate on one measure; rows of one measure are printed and
written together, ours first, so the anchor of the same process sits next to ours.
"""
import datetime
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Optional

import torch
import transformers

from harness.core.files import atomic_write_json, atomic_write_text

# Dense bf16 tensor-core peak of an H200 (SXM) without sparsity, in TFLOP/s (NVIDIA's
# datasheet: 1979 with sparsity). fp32 rows use the non-tensor-core peak (67 TFLOP/s).
PEAK_TFLOPS = {'bf16': 989.0, 'fp32': 67.0, 'tf32': 494.0}


@dataclass
class Row:
    """One measured rate.

    Attributes:
        measure: what is measured (e.g. ``'ViT-B/16 image encoding'``).
        implementation: ``'ours'``, ``'ours packed'``, ``'timm'``, ``'HF BLIP'`` ...
        value: the rate; ``unit`` says of what (``'img/s'``, ``'pairs/s'`` ...).
        settings: batch, precision and shape in words.
        gflops_per_item: hardware GFLOPs (2 per multiply-add, fvcore counts) per item, if known.
        precision: ``'bf16'``/``'fp32'``/``'tf32'``: which peak MFU is taken against.
        notes: anything else (token identity, peak memory, logit difference).
        peak_memory_gib: peak accelerator memory of the measurement, if measured.
    """

    measure: str
    implementation: str
    value: float
    unit: str
    settings: str
    precision: str
    gflops_per_item: Optional[float] = None
    notes: str = ''
    peak_memory_gib: Optional[float] = None
    mfu: Optional[float] = field(default=None)

    def fill_mfu(self, peaks: Optional[dict]) -> 'Row':
        """Set ``mfu`` (a fraction) from the rate, the FLOPs per item and the peak."""
        if peaks and self.gflops_per_item and self.precision in peaks:
            self.mfu = self.value * self.gflops_per_item / (peaks[self.precision] * 1e3)
        return self


def environment(device: torch.device, peaks: Optional[dict]) -> dict:
    """Machine, versions, date and the peaks MFU uses."""
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor()
    return dict(device=name or 'cpu', torch=torch.__version__,
                transformers=transformers.__version__, python=platform.python_version(),
                date=datetime.date.today().isoformat(), cpu_threads=torch.get_num_threads(),
                peak_tflops=peaks or {})


def format_row(row: Row) -> str:
    """One line of the console table."""
    mfu = f'{100 * row.mfu:5.1f}%' if row.mfu is not None else '    - '
    memory = f' peak {row.peak_memory_gib:.1f} GiB' if row.peak_memory_gib is not None else ''
    return (f'{row.measure:<34} {row.implementation:<34} {row.value:12.1f} {row.unit:<8} '
            f'MFU {mfu}  [{row.settings}]{memory} {row.notes}')


def markdown(rows: List[Row], env: dict) -> str:
    """The Markdown table of ``leaderboards/performance.md``."""
    peaks = ', '.join(f'{name} {value:g}' for name, value in env['peak_tflops'].items())
    lines = ['# Performance', '',
             f'`python -m benchmarks.suite` on {env["device"]}, {env["date"]}: torch '
             f'{env["torch"]}, transformers {env["transformers"]}, Python {env["python"]}. '
             'Random weights at the stated shapes; ours and each anchor ran in the same process. '
             f'MFU = rate x fvcore FLOPs (2 per multiply-add) / peak TFLOP/s ({peaks or "none"}).',
             '',
             '| measure | implementation | rate | unit | MFU | peak memory | settings | notes |',
             '|---|---|---:|---|---:|---:|---|---|']
    for row in rows:
        mfu = f'{100 * row.mfu:.1f}%' if row.mfu is not None else '—'
        memory = f'{row.peak_memory_gib:.1f} GiB' if row.peak_memory_gib is not None else '—'
        lines.append(f'| {row.measure} | {row.implementation} | {row.value:.1f} | {row.unit} | '
                     f'{mfu} | {memory} | {row.settings} | {row.notes} |')
    return '\n'.join(lines) + '\n'


def write_json(path: Path, rows: List[Row], env: dict) -> None:
    """Write the rows and the environment they were measured in as JSON (atomically)."""
    atomic_write_json(path, dict(environment=env, rows=[asdict(row) for row in rows]))


def write_report(rows: List[Row], env: dict, out_dir: Path) -> None:
    """Write ``performance.json`` and ``performance.md`` under ``out_dir`` (atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / 'performance.json', rows, env)
    atomic_write_text(out_dir / 'performance.md', markdown(rows, env))
