"""Running the model on tiles: one model per worker process, full batches, optional AMP.

The model is loaded once per process (cached by checkpoint path, file stamp and device) and
never travels in a Dask task graph: tasks carry the checkpoint's path, workers load it.
Batches are always full (the last one is padded) because a convolution's result depends, in
the last bits, on the batch size; fixed batches keep tiled runs bit-reproducible.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from itertools import islice

import numpy as np
import torch

from pspnet_geo.checkpoint import Checkpoint
from pspnet_geo.config.settings import check_device_name
from pspnet_geo.errors import CheckpointError, InputError
from pspnet_geo.segmentation import abandon
from pspnet_geo.segmentation.tta import Augmentation, augmented_logits
from pspnet_geo.stamps import file_stamp

log = logging.getLogger(__name__)

PLAIN = Augmentation()
"""One pass per tile: the model's own logits."""


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is present, else ``cpu``; others are checked."""
    check_device_name(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device} asked for, but no CUDA device is available")
    return device


DEFAULT_CPU_BATCH = 1
DEFAULT_GPU_BATCH = 8


def default_batch_size(device: str) -> int:
    """Tiles per model call when none was asked for: 8 on a GPU, 1 on a CPU."""
    return DEFAULT_GPU_BATCH if device.startswith("cuda") else DEFAULT_CPU_BATCH


def expected_batch_size(device: str, batch_size: int | None) -> int:
    """The batch the blocks of a run will use, for sizing work on the client: ``batch_size``,
    else the default of ``device``, with ``auto`` as this machine resolves it (workers of a
    cluster resolve it for themselves, and may differ)."""
    return batch_size or default_batch_size(device if device != "auto" else resolve_device("auto"))


_LOADING = threading.Lock()


def load_model(path: str | os.PathLike, device: str) -> tuple[Checkpoint, torch.nn.Module]:
    """The checkpoint at ``path`` and its model on ``device``, loaded once per process.

    The lock makes threads of one worker that start together wait for a single load.
    """
    with _LOADING:
        return _model_cached(*_stamp(path), device)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """The checkpoint at ``path``, read once per process (shared with :func:`load_model`)."""
    with _LOADING:
        return _checkpoint_cached(*_stamp(path))


def _stamp(path: str | os.PathLike) -> tuple[str, int, int]:
    """A cache key that changes when the file is rewritten (its :func:`~pspnet_geo.stamps.file_stamp`)."""
    stamp = file_stamp(path)
    if stamp is None:
        raise CheckpointError(f"checkpoint {path} cannot be read (no such file, or no access)")
    return stamp["path"], stamp["mtime_ns"], stamp["size"]


@functools.lru_cache(maxsize=4)
def _checkpoint_cached(path: str, mtime_ns: int, size: int) -> Checkpoint:
    return Checkpoint.load(path)


@functools.lru_cache(maxsize=4)
def _model_cached(path: str, mtime_ns: int, size: int, device: str):
    log.info("loading model %s on %s (pid %d)", path, device, os.getpid())
    checkpoint = _checkpoint_cached(path, mtime_ns, size)
    model = checkpoint.build_model(device)
    if device.startswith("cuda"):   # see _predict_batch
        model = model.to(memory_format=torch.channels_last)
    return checkpoint, model


def predict(model: torch.nn.Module, tiles: Iterable[np.ndarray], batch_size: int, device: str,
            on_device: bool = False, augmentation: Augmentation = PLAIN) -> Iterator[np.ndarray | torch.Tensor]:
    """Float32 logits (classes, h, w) for each normalised tile (bands, h, w), in order: numpy
    arrays, or (``on_device``) tensors left on ``device`` for blending there. With an
    ``augmentation``, the mean over its passes (:mod:`.tta`).

    Tiles are stacked a batch at a time, so a caller can hand over a lazy sequence. On an
    executor thread, gives up between batches once the block's run is over (:mod:`.abandon`).
    """
    source = iter(tiles)
    while batch := list(islice(source, batch_size)):
        abandon.check()     # a block whose run is over stops here (Ctrl-C, a failed run)
        yield from _predict_batch(model, np.stack(batch), batch_size, device, on_device, augmentation)


def _predict_batch(model: torch.nn.Module, batch: np.ndarray, batch_size: int, device: str,
                   on_device: bool = False, augmentation: Augmentation = PLAIN) -> np.ndarray | torch.Tensor:
    count = len(batch)
    if count < batch_size:
        padding = np.zeros((batch_size - count, *batch.shape[1:]), dtype=batch.dtype)
        batch = np.concatenate([batch, padding])
    inputs = torch.from_numpy(batch).to(device)
    if device.startswith("cuda"):
        # Channels-last convolutions: PSPNet-R50 bf16 forward 144 -> 171 Mpx/s on an H200, R18
        # unchanged (python benchmarks/gpu_model_variants.py, docs/benchmarks.md).
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), _autocast(device):
        logits = model(inputs) if augmentation.is_plain else augmented_logits(model, inputs[:count], augmentation)
    if on_device:       # a tensor of its own, outside inference mode, to be weighted in place
        return logits[:count].to(torch.float32, memory_format=torch.contiguous_format, copy=True)
    return logits[:count].float().contiguous().cpu().numpy()     # (a channels-last model's are not)


GPU_CALLS_AT_ONCE = 2
"""Blocks whose model calls (and, on the device, blending) run at once on one GPU, whatever the
number of threads: one computing while the next is copied in. Every thread of a worker (by
default one per CPU core) reads and normalises its blocks; without this gate each would also
keep a batch's activations and its block's sums on the GPU, and sixteen threads would need
sixteen times the memory of one for no gain in speed."""
_GATES: dict[str, threading.BoundedSemaphore] = {}
_GATES_LOCK = threading.Lock()


def device_gate(device: str) -> contextlib.AbstractContextManager:
    """What a thread holds while it runs a block's model calls and blending on ``device``:
    nothing on a CPU (each thread runs its own single-threaded calls), a slot of
    :data:`GPU_CALLS_AT_ONCE` on a GPU."""
    if not device.startswith("cuda"):
        return contextlib.nullcontext()
    key = device if ":" in device else f"{device}:0"     # "cuda" is cuda:0, one gate for both
    with _GATES_LOCK:
        return _GATES.setdefault(key, threading.BoundedSemaphore(GPU_CALLS_AT_ONCE))


def _autocast(device: str) -> torch.autocast:
    """Mixed precision on CUDA (bfloat16 where supported), none elsewhere."""
    if device.startswith("cuda"):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)
