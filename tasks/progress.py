"""Throughput and ETA logging for long inference loops (feature extraction, re-ranking, generation).

Usage::

    progress = ProgressMeter(total=len(dataset), desc='image features', unit='img')
    for batch in loader:
        ...
        progress.update(len(batch))
"""
import logging
import time
from datetime import timedelta
from typing import Callable, Optional, Union

from mmengine.dist import is_main_process
from mmengine.logging import print_log


class ProgressMeter:
    """Logs ``done/total``, items per second and the ETA of a loop at most every ``interval_s``.

    The final update (``done == total``) is always logged, so every loop ends with its
    overall rate. Only the main process logs by default: in distributed runs each rank
    works on its own shard, and rank 0's rate is representative.

    Args:
        total: number of items the loop will process.
        desc: what the loop does (the line's prefix).
        unit: the items' name in the line (``'img'``, ``'pairs'``, ...).
        interval_s: least seconds between two log lines.
        logger: passed to :func:`mmengine.logging.print_log` (``'current'`` = the runner's).
        enabled: log at all; default: only on the main process.
        clock: monotonic time source (tests pass a fake one).
    """

    def __init__(self, total: int, desc: str, unit: str = 'items', interval_s: float = 10.0,
                 logger: Union[str, logging.Logger] = 'current', enabled: Optional[bool] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.desc = desc
        self.unit = unit
        self.interval_s = interval_s
        self.logger = logger
        self.enabled = is_main_process() if enabled is None else enabled
        self.clock = clock
        self.done = 0
        self.start = clock()
        self.last_logged = self.start

    @property
    def rate(self) -> float:
        """Items per second since the meter was created (0 before any time has passed)."""
        elapsed = self.clock() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def status_line(self) -> str:
        """``desc: done/total unit (pct), rate unit/s, ETA h:mm:ss`` (or elapsed when done)."""
        now = self.clock()
        rate = self.rate
        percent = 100.0 * self.done / self.total if self.total else 100.0
        line = f'{self.desc}: {self.done}/{self.total} {self.unit} ({percent:.1f}%), ' \
               f'{rate:.1f} {self.unit}/s'
        if self.done >= self.total:
            return f'{line}, took {timedelta(seconds=round(now - self.start))}'
        eta = (self.total - self.done) / rate if rate > 0 else float('inf')
        eta_text = str(timedelta(seconds=round(eta))) if eta != float('inf') else '?'
        return f'{line}, ETA {eta_text}'

    def update(self, count: int = 1) -> None:
        """Record ``count`` more finished items; log when the interval passed or all are done."""
        self.done += count
        now = self.clock()
        finished = self.done >= self.total
        if self.enabled and (finished or now - self.last_logged >= self.interval_s):
            print_log(self.status_line(), logger=self.logger)
            self.last_logged = now
