"""Why tiled runs use full batches and one intra-op thread per model call.

Prints, for an untrained PSPNet on CPU, how much a tile's logits change with the batch size,
with the number of intra-op threads and with its neighbours in a batch, and the throughput of
two concurrent single-threaded calls against one call on two threads. docs/architecture.md
quotes its output.

    python benchmarks/determinism.py [--backbone resnet50]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from pspnet_geo.models import PSPNet


def logits(model: torch.nn.Module, batch: torch.Tensor, threads: int) -> torch.Tensor:
    torch.set_num_threads(threads)
    with torch.inference_mode():
        return model(batch)


def differences(model: torch.nn.Module, tiles: torch.Tensor) -> dict[str, float]:
    """Largest change in any logit of the first tile under each change of how it is run."""
    reference = logits(model, tiles[:4], 1)[0]
    one = logits(model, tiles[:1], 1)[0]
    two_threads = logits(model, tiles[:4], 2)[0]
    other_neighbours = logits(model, torch.cat([tiles[:1], tiles[4:7]]), 1)[0]
    return {
        "batch of 1 instead of 4": float((one - reference).abs().max()),
        "2 intra-op threads instead of 1": float((two_threads - reference).abs().max()),
        "other tiles beside it in the batch": float((other_neighbours - reference).abs().max()),
    }


def throughput(model: torch.nn.Module, tiles: torch.Tensor, calls: int = 8) -> dict[str, float]:
    """Seconds for ``calls`` batches: sequential on 2 threads, and 2 concurrent on 1 thread each."""
    batches = [tiles[:2]] * calls
    logits(model, batches[0], 2)
    started = time.perf_counter()
    for batch in batches:
        logits(model, batch, 2)
    sequential = time.perf_counter() - started
    torch.set_num_threads(1)
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda b: logits(model, b, 1), batches))
    return {"one call at a time, 2 threads (s)": sequential,
            "two calls at once, 1 thread each (s)": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--tile", type=int, default=256)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = PSPNet(2, 3, args.backbone, aux=False, backbone_weights=None).eval()
    tiles = torch.randn(7, 3, args.tile, args.tile)
    print(f"PSPNet-{args.backbone}, {args.tile} px tiles, torch {torch.__version__}, CPU")
    for name, value in {**differences(model, tiles), **throughput(model, tiles)}.items():
        print(f"  {name}: {value:.3g}")


if __name__ == "__main__":
    main()
