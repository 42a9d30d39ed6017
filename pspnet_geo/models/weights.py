"""Pretrained weights for the backbone: found in the torch hub cache, never downloaded unasked.

pspnet-geo runs on machines without network access, so ``backbone_weights="auto"`` only uses a
torchvision weight file that is already in ``torch.hub.get_dir()/checkpoints``; ``"imagenet"``
(``train --backbone-weights imagenet``) downloads it there when missing, because the user asked
(:func:`download_backbone_weights`). The RGB stem filters are adapted to any number of bands
(:func:`adapt_first_conv`); a state dict whose stem takes the image's bands (multispectral
pretraining) is used as it is.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import (
    ResNet18_Weights,
    ResNet34_Weights,
    ResNet50_Weights,
    ResNet101_Weights,
    WeightsEnum,
)

from pspnet_geo.config.pipeline_schema import is_url
from pspnet_geo.config.pipelines import Pipeline
from pspnet_geo.errors import CheckpointError, PipelineError, RunError

log = logging.getLogger(__name__)

WEIGHTS: dict[str, type[WeightsEnum]] = {
    "resnet18": ResNet18_Weights,
    "resnet34": ResNet34_Weights,
    "resnet50": ResNet50_Weights,
    "resnet101": ResNet101_Weights,
}


def _cache_folder() -> Path:
    """Where torch.hub keeps downloaded weight files."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _file_name(weights: WeightsEnum) -> str:
    """The file name torch.hub gives the download of ``weights``."""
    return os.path.basename(urlparse(weights.url).path)


def cached_weights_path(backbone: str) -> Path | None:
    """The torchvision ImageNet weight file for ``backbone`` already in the cache, if any.

    torchvision's default weights are preferred; any other ImageNet version found is used too.
    """
    enum = WEIGHTS[backbone]
    versions = [enum.DEFAULT, *(w for w in enum if w is not enum.DEFAULT)]
    for weights in versions:
        path = _cache_folder() / _file_name(weights)
        if path.is_file():
            return path
    return None


def download_backbone_weights(backbone: str) -> Path:
    """Download torchvision's default ImageNet weights for ``backbone`` into the torch cache.

    Only for an explicit user request (``--backbone-weights imagenet``): nothing else downloads.
    """
    weights = WEIGHTS[backbone].DEFAULT
    path = _cache_folder() / _file_name(weights)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = torch.hub.HASH_REGEX.search(path.name)
        try:
            torch.hub.download_url_to_file(weights.url, str(path), progress=True,
                                           hash_prefix=digest.group(1) if digest else None)
        except (OSError, RuntimeError) as err:     # no network, or a file whose hash does not match
            raise RunError(f"could not download {weights.url} ({err}); without network, put the file in "
                           f"{path.parent}") from None
    return path


def adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """ImageNet stem filters (out, 3, k, k) turned into filters for ``in_channels`` bands.

    Three or more bands: the first three bands get the RGB filters and every further band the
    mean of the RGB filters. One or two bands: every band gets the mean RGB filter scaled by
    3 / in_channels, so that a grey scene gives the same stem response as the RGB model sees
    for that grey image (for one band this is the sum of the RGB filters).
    """
    mean = weight.mean(dim=1, keepdim=True)
    if in_channels >= 3:
        extra = mean.expand(-1, in_channels - 3, -1, -1)
        return torch.cat([weight, extra], dim=1).contiguous()
    return (mean * (3 / in_channels)).expand(-1, in_channels, -1, -1).contiguous()


def _stem_prefix(state: dict) -> str | None:
    """The prefix before a ResNet's own keys in another project's state dict (``module.`` of a
    DataParallel wrap, ``module.encoder_q.`` of a MoCo checkpoint, ``backbone.``...): the
    shortest ``P`` with ``P + "conv1.weight"`` and ``P + "layer1.0.conv1.weight"`` both there."""
    found = [key[:-len("conv1.weight")] for key in state
             if isinstance(key, str) and key.endswith("conv1.weight") and not key.endswith(".0.conv1.weight")]
    found = [prefix for prefix in found if f"{prefix}layer1.0.conv1.weight" in state]
    return min(found, key=len) if found else None


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ResNet state dict file with torchvision's key names (another project's
    prefix removed), as a CheckpointError if unreadable. Read with ``weights_only``: no pickled
    code."""
    if not path.is_file():
        raise CheckpointError(f"backbone weight file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch.load fails in many ways on a file that is not its own
        raise CheckpointError(f"{path} is not a torch weight file, or is damaged") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]     # a training checkpoint of another project
    if isinstance(state, dict) and "conv1.weight" not in state:
        prefix = _stem_prefix(state)
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)} if prefix else state
    if not isinstance(state, dict) or "conv1.weight" not in state:
        raise CheckpointError(f"{path} is not a ResNet state dict (no conv1.weight)")
    return state


def load_backbone_weights(
    module: nn.Module, backbone: str, source: str | os.PathLike | None
) -> Path | None:
    """Load ImageNet weights into a ResNetBackbone; return the file used, None for random init.

    ``source``: "auto" = the cached torchvision file if there is one, "imagenet" = torchvision's
    file, downloaded into the torch cache if it is not there (the user asked for it), None =
    keep the random initialisation, anything else = the path of a ResNet state dict: RGB
    ImageNet weights (adapted to the image's bands) or weights whose first convolution takes
    exactly the image's bands (multispectral pretraining, such as TorchGeo's or SSL4EO's).
    """
    if source is None:
        return None
    if source == "imagenet":
        path = cached_weights_path(backbone) or download_backbone_weights(backbone)
    elif source == "auto":
        path = cached_weights_path(backbone)
        if path is None:
            log.info("no ImageNet weights for %s in %s; the backbone starts from random init",
                     backbone, _cache_folder())
            return None
    else:
        path = Path(source)
    state = {k: v for k, v in _read_state_dict(path).items() if not k.startswith("fc.")}
    given, wanted = state["conv1.weight"].shape[1], module.conv1.in_channels
    if given == 3 and wanted != 3:
        state["conv1.weight"] = adapt_first_conv(state["conv1.weight"], wanted)
    elif given != wanted:
        raise CheckpointError(f"{path}: its first convolution takes {given} bands, the image has {wanted}; "
                              "give weights for the image's bands, or RGB weights")
    try:
        module.load_state_dict(state)
    except RuntimeError:
        raise CheckpointError(f"{path} does not hold {backbone} weights") from None
    log.info("backbone %s initialised from %s", backbone, path)
    return path


def resolve_weights(pipeline: Pipeline, download: bool = False) -> Path:
    """The local checkpoint file the preset names; a URL is fetched only if ``download``.

    A URL's file is kept in torch hub's checkpoint cache, where torch keeps its own weights,
    and used from there afterwards.
    """
    name, weights = pipeline.name, pipeline.weights
    if weights is None:
        raise PipelineError(
            f"pipeline {name} names no trained model: train one with "
            f"`pspnet-geo train --pipeline {name} ...` and pass it with --model"
        )
    if not is_url(weights):
        path = Path(weights)
        if not path.is_file():
            raise PipelineError(f"pipeline {name}: its weights file {path} does not exist")
        return path
    cached = _cache_folder() / os.path.basename(urlparse(weights).path)
    if cached.is_file():
        return cached
    if not download:
        raise PipelineError(
            f"pipeline {name}: its weights {weights} are not downloaded yet (looked for "
            f"{cached}); nothing is downloaded unless you ask for it"
        )
    log.info("downloading the weights of pipeline %s from %s", name, weights)
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:  # torch writes a temporary file and renames it, so a failed download leaves nothing
        torch.hub.download_url_to_file(weights, str(cached))
    except OSError as err:
        raise PipelineError(f"cannot download weights of pipeline {name}: {err}") from None
    return cached
