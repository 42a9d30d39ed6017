"""Which ways of calling the model make a GPU faster (issue 12, "feed the GPU"): measured, not assumed.

For PSPNet-ResNet18 and -ResNet50 (random weights, 3 bands, 2 classes, tiles 512 px), one run
prints the model's rate in Mpx/s for:

- ``predict``: the call ``segment`` makes today (float32 numpy tiles in, float32 logits out,
  bf16 autocast), batch 8;
- the forward pass alone on tiles already on the GPU (bf16 autocast), batch 8, 16 and 32;
- the same in ``channels_last`` memory format, with and without ``cudnn.benchmark``;
- float32 without autocast, for scale;
- host -> device copies of a batch from pageable and from pinned memory, and the logits back
  (GB/s); and, with ``--compile``, ``torch.compile`` of the forward pass (compile time too).

Each rate is the mean over calls for at least ``--seconds`` after two warm-up calls, with the
GPU synchronised around the clock. On a machine without CUDA it runs on the CPU with small
tiles, so the script itself can be tested anywhere; those figures mean nothing.

    python benchmarks/gpu_model_variants.py --json variants.json
    python benchmarks/gpu_model_variants.py --compile --backbones resnet18
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from harness import log, machine, use_checkout

use_checkout()

from pspnet_geo.models import PSPNet  # noqa: E402
from pspnet_geo.segmentation.inference import _autocast, predict  # noqa: E402

BANDS, CLASSES = 3, 2


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def rate(call: Callable[[], object], units: float, device: str, seconds: float) -> float:
    """``units`` per second of ``call``: two warm-up calls, then calls for at least ``seconds``."""
    for _ in range(2):
        call()
    synchronise(device)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or calls < 3:
        call()
        calls += 1
        if calls % 4 == 0:
            synchronise(device)
    synchronise(device)
    return units * calls / (time.perf_counter() - started)


def build(backbone: str, device: str, channels_last: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    model = PSPNet(CLASSES, BANDS, backbone, aux=False, backbone_weights=None).to(device).eval()
    return model.to(memory_format=torch.channels_last) if channels_last else model


def forward_rate(model: torch.nn.Module, batch: int, tile: int, device: str, seconds: float,
                 autocast: bool = True, channels_last: bool = False) -> float:
    """Mpx/s of the forward pass on a batch already on the device."""
    inputs = torch.randn(batch, BANDS, tile, tile, device=device)
    if channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)

    def call() -> None:
        with torch.inference_mode(), (_autocast(device) if autocast else torch.autocast("cpu", enabled=False)):
            model(inputs)
    return rate(call, batch * tile * tile / 1e6, device, seconds)


def predict_rate(model: torch.nn.Module, batch: int, tile: int, device: str, seconds: float) -> float:
    """Mpx/s of :func:`predict` as ``segment`` calls it: numpy tiles in, numpy logits out."""
    tiles = np.random.default_rng(0).standard_normal((batch, BANDS, tile, tile), dtype=np.float32)
    return rate(lambda: list(predict(model, tiles, batch, device)), batch * tile * tile / 1e6, device, seconds)


def copy_rates(batch: int, tile: int, device: str, seconds: float) -> dict[str, float]:
    """GB/s of a batch of float32 tiles to the device (pageable, pinned) and 2-class logits back."""
    if not device.startswith("cuda"):
        return {}
    pageable = torch.randn(batch, BANDS, tile, tile)
    pinned = pageable.pin_memory()
    logits = torch.randn(batch, CLASSES, tile, tile, device=device)
    gigabytes_in, gigabytes_out = pageable.numel() * 4 / 1e9, logits.numel() * 4 / 1e9
    return {"to_device_pageable_GBps": rate(lambda: pageable.to(device), gigabytes_in, device, seconds),
            "to_device_pinned_GBps": rate(lambda: pinned.to(device, non_blocking=True), gigabytes_in, device, seconds),
            "logits_to_host_GBps": rate(lambda: logits.cpu(), gigabytes_out, device, seconds)}


def measure(backbone: str, tile: int, device: str, seconds: float, compile_model: bool) -> dict:
    """Every variant for one backbone."""
    row: dict[str, object] = {"backbone": backbone}
    torch.backends.cudnn.benchmark = False
    model = build(backbone, device)
    # predict makes its inputs channels-last on CUDA, as segment's model is (inference.load_model)
    row["predict_b8"] = predict_rate(build(backbone, device, channels_last=device == "cuda"), 8, tile, device,
                                     seconds)
    for batch in (8, 16, 32):
        row[f"forward_bf16_b{batch}"] = forward_rate(model, batch, tile, device, seconds)
    row["forward_fp32_b8"] = forward_rate(model, 8, tile, device, seconds, autocast=False)
    last = build(backbone, device, channels_last=True)
    row["forward_bf16_channels_last_b16"] = forward_rate(last, 16, tile, device, seconds, channels_last=True)
    torch.backends.cudnn.benchmark = True
    row["forward_bf16_cudnn_benchmark_b16"] = forward_rate(model, 16, tile, device, seconds)
    row["forward_bf16_channels_last_cudnn_benchmark_b16"] = forward_rate(last, 16, tile, device, seconds,
                                                                         channels_last=True)
    row["predict_b16_cudnn_benchmark"] = predict_rate(last if device == "cuda" else model, 16, tile, device,
                                                      seconds)
    if compile_model:
        started = time.perf_counter()
        compiled = torch.compile(model)
        forward_rate(compiled, 16, tile, device, 0.0)       # compiles on the first calls
        row["compile_seconds"] = time.perf_counter() - started
        row["forward_bf16_compiled_b16"] = forward_rate(compiled, 16, tile, device, seconds)
    torch.backends.cudnn.benchmark = False
    row.update(copy_rates(16, tile, device, seconds))
    log(json.dumps({key: round(value, 2) if isinstance(value, float) else value for key, value in row.items()}))
    return row


def markdown(rows: list[dict], setup: dict) -> str:
    """One table: a row per variant, a column per backbone."""
    keys = [key for key in rows[0] if key != "backbone"]
    lines = [f"{setup['machine']}; torch {setup['torch']}; device {setup['device']} ({setup['name']}); "
             f"tiles {setup['tile']} px, {BANDS} bands, {CLASSES} classes, random weights.", "",
             "| variant | " + " | ".join(row["backbone"] for row in rows) + " |",
             "|---|" + "---|" * len(rows)]
    for key in keys:
        unit = "" if key.endswith(("GBps", "seconds")) else " Mpx/s"
        cells = [f"{row[key]:.1f}" if key in row else "-" for row in rows]
        lines.append(f"| {key}{unit} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbones", nargs="+", default=["resnet18", "resnet50"],
                        choices=["resnet18", "resnet50", "resnet101"])
    parser.add_argument("--seconds", type=float, default=1.5, help="time each variant at least this long")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--json", type=str, default=None, help="write the results here as JSON too")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tile = 512 if device == "cuda" else 64
    setup = {"machine": machine(), "torch": torch.__version__, "device": device, "tile": tile,
             "name": torch.cuda.get_device_name() if device == "cuda" else "no GPU: figures mean nothing"}
    rows = [measure(backbone, tile, device, args.seconds, args.compile) for backbone in args.backbones]
    print(markdown(rows, setup))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"setup": setup, "results": rows}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
