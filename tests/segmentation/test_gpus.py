"""--gpus: one Dask worker per GPU, each pinned to its own (the pinning is tested on CPU)."""

from __future__ import annotations

import os

import pytest
from distributed import Client

from pspnet_geo.errors import InputError
from pspnet_geo.segmentation.executors import LOCAL_HTTP
from pspnet_geo.segmentation.gpus import check_gpu_options, chosen_gpus, gpu_cluster


def test_each_worker_sees_only_its_own_gpu():
    with gpu_cluster(["0", "3"], threads=1, dashboard=LOCAL_HTTP) as cluster, Client(cluster) as client:
        seen = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))   # read in each worker
        threads = client.nthreads()
    assert sorted(seen.values()) == ["0", "3"] and set(threads.values()) == {1}
    assert all(address.startswith("tcp://127.0.0.1:") for address in seen)    # this machine only


@pytest.mark.parametrize(("spec", "chosen"), [("all", ["0", "1", "2"]), ("2,0", ["2", "0"]), (["1"], ["1"]), ([1, 0], ["1", "0"]),
                                              (None, [])])
def test_gpus_are_chosen_from_the_visible_ones(spec, chosen):
    assert chosen_gpus(spec, visible=["0", "1", "2"]) == chosen


@pytest.mark.parametrize(("spec", "visible", "message"), [
    ("all", [], "no CUDA GPU is visible"),
    ("4", ["0", "1"], r"ids of the visible GPUs \(0,1\)"),
    ("0,0", ["0", "1"], "distinct ids"),
    ("", ["0"], "use 'all'"),
])
def test_gpus_that_cannot_be_used_are_one_clear_error(spec, visible, message):
    with pytest.raises(InputError, match=message):
        chosen_gpus(spec, visible=visible)


@pytest.mark.parametrize(("workers", "scheduler", "device", "message"), [
    (3, None, "auto", "one worker per GPU"),
    (1, "tcp://127.0.0.1:8786", "auto", "--scheduler"),
    (1, None, "cpu", "--device cpu"),
    (1, None, "cuda:1", "--device cuda:1"),       # each worker sees its GPU as cuda:0
])
def test_options_that_contradict_gpus_are_refused(workers, scheduler, device, message):
    with pytest.raises(InputError, match=message):
        check_gpu_options(["0", "1"], workers, scheduler, device)
    check_gpu_options([], workers, scheduler, device)    # without --gpus they are not its business
