"""Work on a side CUDA stream, as the warm-up before a CUDA graph capture asks for."""
from typing import Callable, Optional, TypeVar

import torch

Result = TypeVar('Result')


def on_side_stream(run: Callable[[], Result], device: Optional[torch.device] = None
                   ) -> Result:
    """``run()`` on a new stream of ``device`` (default: the current one) that first waits
    for the current stream, which then waits for it; returns what ``run`` returns."""
    current = torch.cuda.current_stream(device)
    stream = torch.cuda.Stream(device)
    stream.wait_stream(current)
    with torch.cuda.stream(stream):
        result = run()
    current.wait_stream(stream)
    return result
