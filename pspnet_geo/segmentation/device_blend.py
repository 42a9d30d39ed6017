"""Blending on the model's device: on a GPU, a block's tiles are weighted and summed where the
model left their logits, and only what the outputs need comes back to the host.

A block's interior is finished on the device: its class ids come back as uint8 (one byte a
pixel instead of four per class and tile); probabilities, when asked for, are computed on the
host from the blended logits by the same function as ever. The sums a block keeps for the seam
it leads, and its tiles' crops of the other seams, come back as the float32 arrays the client
and the journal take. The arithmetic is the host's, operation for operation (float32 multiply,
add and divide, the first of equal maxima): the same code on CPU torch gives masks identical to
the numpy path, which the tests check; on CUDA it is the same IEEE arithmetic.

Used on CUDA devices; :data:`BLEND_ON_DEVICE` forces it on or off (the tests force it on CPU).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from rasterio.windows import Window

from pspnet_geo.maskfile import NODATA_CLASS
from pspnet_geo.segmentation.stitch import Accumulator, FinishedPiece, softmax_uint8
from pspnet_geo.segmentation.tiling import TilePlan

BLEND_ON_DEVICE: bool | None = None
"""None: blend on the device when it is a GPU; True or False: always or never."""

def blends_on_device(device: str) -> bool:
    """Whether blocks run on ``device`` blend there."""
    return device.startswith("cuda") if BLEND_ON_DEVICE is None else BLEND_ON_DEVICE


@functools.lru_cache(maxsize=64)
def _weights_on(plan: TilePlan, first_row: bool, last_row: bool, first_col: bool, last_col: bool,
                device: str) -> torch.Tensor:
    row = 0 if first_row else plan.rows.count - 1 if last_row else 1
    col = 0 if first_col else plan.cols.count - 1 if last_col else 1
    return torch.from_numpy(plan.tile_weights(row, col)).to(device)


def device_weights(plan: TilePlan, tile: tuple[int, int], device: str) -> torch.Tensor:
    """A tile's blending weights on ``device``, copied there once per plan and kind of tile (at
    most nine: first, last or middle along each axis), not once per tile: each copy waits for
    everything queued on the device."""
    row, col = tile
    return _weights_on(plan, row == 0, row == plan.rows.count - 1, col == 0, col == plan.cols.count - 1, device)


class DeviceAccumulator(Accumulator):
    """An :class:`~pspnet_geo.segmentation.stitch.Accumulator` whose sums live on ``device``
    (its ``add`` works unchanged on tensors)."""

    def __init__(self, window: Window, num_classes: int, device: str) -> None:
        self.window, self.device = window, device
        self.numerator = torch.zeros((num_classes, window.height, window.width), dtype=torch.float32, device=device)
        self.weight_sum = torch.zeros((window.height, window.width), dtype=torch.float32, device=device)

    def finish(self, valid: np.ndarray, with_probabilities: bool) -> FinishedPiece:
        """Class ids computed on the device; probabilities from the logits brought to the host.
        The sums are divided in place, as on the host: the accumulator is spent."""
        covered = torch.from_numpy(np.ascontiguousarray(valid)).to(self.device) & (self.weight_sum > 0)
        logits = self.numerator.div_(self.weight_sum).masked_fill_(~covered, 0.0)
        classes = torch.argmax(logits, dim=0).to(torch.uint8)    # the first of equal maxima, as numpy
        classes = torch.where(covered, classes, NODATA_CLASS)    # no boolean indexing: it waits for the GPU
        probabilities = None
        if with_probabilities:
            probabilities = softmax_uint8(logits.cpu().numpy())
            probabilities[:, ~covered.cpu().numpy()] = 0
        return FinishedPiece(self.window, classes.cpu().numpy(), probabilities)

    def to_host(self) -> Accumulator:
        """The same sums as a host accumulator, for a seam finished on the client."""
        host = Accumulator.__new__(Accumulator)
        host.window = self.window
        host.numerator, host.weight_sum = self.numerator.cpu().numpy(), self.weight_sum.cpu().numpy()
        return host
