"""How threads share a device's model calls."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from pspnet_geo.segmentation.inference import GPU_CALLS_AT_ONCE, device_gate


def _most_at_once(device: str, threads: int) -> int:
    """The most threads found inside ``device_gate(device)`` together."""
    inside, most, lock = [0], [0], threading.Lock()

    def call(_):
        with device_gate(device):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.02)
            with lock:
                inside[0] -= 1

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(call, range(4 * threads)))
    return most[0]


def test_a_gpu_takes_a_few_model_calls_at_once_whatever_the_threads():
    assert _most_at_once("cuda:7", 8) == GPU_CALLS_AT_ONCE     # the gate needs no GPU to be tested
    assert device_gate("cuda:7") is device_gate("cuda:7") and device_gate("cuda:6") is not device_gate("cuda:7")


def test_cpu_threads_each_run_their_own_call():
    assert _most_at_once("cpu", 4) == 4
