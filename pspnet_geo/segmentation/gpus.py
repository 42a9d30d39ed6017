"""Every GPU of a machine with one flag: one Dask worker process per GPU, pinned to it.

``--gpus all`` (or a list such as ``0,2``) starts a local cluster whose workers each see only
their own GPU (``CUDA_VISIBLE_DEVICES`` set in the worker process's environment before CUDA
starts), so each worker's ``cuda`` is its GPU, and blocks spread over the GPUs as they do over
workers. Each worker runs several threads that read and blend around its GPU; its model calls
are gated (:data:`~pspnet_geo.segmentation.inference.GPU_CALLS_AT_ONCE`).

dask-cuda's ``LocalCUDACluster`` does the same pinning and more (CPU affinity, UCX), but it asks
NVML about the GPUs when it starts, so it cannot start, or be tested, on a machine without one;
the pinning is all a run needs, and a plain ``SpecCluster`` of nannies gives it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch
from distributed import Nanny, Scheduler, SpecCluster

from pspnet_geo.errors import InputError

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"


def visible_gpus() -> list[str]:
    """The GPU ids this process may use: ``CUDA_VISIBLE_DEVICES``'s entries when it is set (as a
    scheduler such as Slurm sets it), else 0 .. n-1 of the GPUs torch sees."""
    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [entry.strip() for entry in listed.split(",") if entry.strip()][:torch.cuda.device_count()]
    return [str(index) for index in range(torch.cuda.device_count())]


def chosen_gpus(spec: str | Sequence[str] | None, visible: Sequence[str] | None = None) -> list[str]:
    """The GPUs ``--gpus`` names (``all``, or ids such as ``0,2``), checked against the visible
    ones; an empty list for none."""
    if spec is None:
        return []
    visible = visible_gpus() if visible is None else list(visible)
    if not visible:
        raise InputError("--gpus: no CUDA GPU is visible to this process (torch.cuda.is_available() is False)")
    if isinstance(spec, str) and spec.strip() == "all":
        return list(visible)
    asked = [str(entry).strip() for entry in (spec.split(",") if isinstance(spec, str) else spec)]
    unknown = [entry for entry in asked if entry not in visible]
    if unknown or not asked or len(set(asked)) != len(asked):
        raise InputError(f"--gpus {','.join(asked)}: use 'all' or distinct ids of the visible GPUs "
                         f"({','.join(visible)})")
    return asked


def check_gpu_options(gpus: Sequence[str], workers: int, scheduler: str | None, device: str) -> None:
    """``--gpus`` decides the workers itself and runs on the GPUs: refuse options saying otherwise."""
    if not gpus:
        return
    if scheduler:
        raise InputError("--gpus starts a local cluster; it cannot be combined with --scheduler")
    if workers not in (1, len(gpus)):
        raise InputError(f"--gpus gives one worker per GPU ({len(gpus)}); leave --workers out")
    if device not in ("auto", "cuda", "cuda:0"):     # each worker sees one GPU, as cuda:0
        raise InputError(f"--gpus runs the model on each worker's own GPU; it cannot be combined with "
                         f"--device {device}")


def gpu_cluster(gpus: Sequence[str], threads: int, dashboard: str) -> SpecCluster:
    """A local cluster of one worker process per GPU id, each seeing only that GPU, with
    ``threads`` threads each; its scheduler serves HTTP on ``dashboard``."""
    log.info("starting a local Dask cluster: one worker per GPU (%s) x %d threads", ",".join(gpus), threads)
    # This machine only, as LocalCluster does: a scheduler runs the pickled tasks it is sent.
    workers = {f"gpu{gpu}": {"cls": Nanny, "options": {"nthreads": threads, "env": {"CUDA_VISIBLE_DEVICES": gpu},
                                                       "host": LOOPBACK, "silence_logs": logging.ERROR}}
               for gpu in gpus}
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": dashboard, "host": LOOPBACK}}
    return SpecCluster(workers=workers, scheduler=scheduler, silence_logs=logging.ERROR, name="pspnet-geo-gpus")
