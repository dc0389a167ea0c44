"""How zoo code runs in a process: torch threads, pixel tensors, progress bars, the photos.

Shared by training, sampling and the worker processes of a build.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from provenance.data.generators import IMAGE_SIZE
from provenance.data.photos import PhotoCrops, load_photo_dict

__all__ = ["photo_crops", "progress_bar", "set_progress_row", "to_tensor", "to_uint8", "torch_threads"]

#: Torch intra-op threads per process (one: deterministic, and no oversubscription).
NUM_THREADS = 1
# Worker processes draw their bars on rows of their own, so that side-by-side builds do not overwrite each other.
_progress_row = 0


def set_progress_row(row: int) -> None:
    """Draw this process's progress bars on terminal row ``row`` (0: the first)."""
    global _progress_row
    _progress_row = int(row)


def progress_bar(total: int, desc: str, progress: bool) -> tqdm:
    """A tqdm bar on stderr (disabled unless ``progress``), on this process's row."""
    return tqdm(
        total=total,
        desc=desc,
        disable=not progress,
        leave=False,
        file=sys.stderr,
        dynamic_ncols=True,
        position=_progress_row,
    )


@contextlib.contextmanager
def torch_threads(n: int = NUM_THREADS) -> Iterator[None]:
    """Run torch on at most ``n`` intra-op threads, restoring the previous count after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, min(n, previous, os.cpu_count() or 1)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 -> ``(N, 3, H, W)`` float in ``[-1, 1]``."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` float in ``[-1, 1]`` -> ``(N, H, W, 3)`` uint8."""
    pixels = ((images.detach().float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().numpy()


@functools.lru_cache(maxsize=2)
def photo_crops(photos: tuple[str, ...]) -> PhotoCrops:
    """Crops of the named photos (loaded once per process)."""
    return PhotoCrops(load_photo_dict(photos), size=IMAGE_SIZE)
