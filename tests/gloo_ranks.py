"""Run a test's work in several processes joined by torch.distributed (gloo, on the CPU).

``run_on_ranks(worker, *args)`` starts one process per rank with the environment
``torchrun`` gives (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``), one CPU thread each, and returns every rank's ``worker(rank, *args)``.
``worker`` must be a module-level function (the processes are spawned, not forked).
"""
import os
import pickle
import socket
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed
import torch.multiprocessing

# A one-process reference runs its block on one CPU thread, as every rank does: CPU kernels
# may sum in another order per thread count, and it must match the ranks bit for bit.
from backbones.one_thread_weight_gradients import one_thread  # noqa: F401 (for the tests)


def free_port() -> int:
    """A TCP port nobody listens on now (for the rendezvous of one run)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _rank_process(rank, world_size, port, out_dir, join_group, worker, args):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    if join_group:
        torch.distributed.init_process_group('gloo')
    try:
        result = worker(rank, *args)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    with open(Path(out_dir) / f'rank{rank}.pkl', 'wb') as handle:
        pickle.dump(result, handle)
    # The result is on disk: leave without the interpreter's teardown. There, now and then,
    # a C++ thread of torch.distributed aborts the process ("terminate called without an
    # active exception", SIGABRT with no Python frame left), failing a rank that succeeded.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_on_ranks(worker, *args, world_size: int = 2, join_group: bool = True) -> list:
    """``[worker(rank, *args) for rank in range(world_size)]``, each in its own process.

    With ``join_group`` the processes join a gloo process group before ``worker`` runs;
    without it ``worker`` joins it itself (as ``harness.experiment`` does for
    ``launcher='pytorch'``). A rank that raises fails the call (the others are stopped).
    """
    with tempfile.TemporaryDirectory() as out_dir:
        torch.multiprocessing.spawn(_rank_process, nprocs=world_size, args=(
            world_size, free_port(), out_dir, join_group, worker, args))
        results = []
        for rank in range(world_size):
            with open(Path(out_dir) / f'rank{rank}.pkl', 'rb') as handle:
                results.append(pickle.load(handle))
        return results
