"""``pspnet-geo train``: a thin command over :func:`pspnet_geo.training.train`.

Option names and defaults are those of :class:`~pspnet_geo.training.settings.TrainSettings`,
read from it so the two cannot drift apart; the command builds the settings and trains.
"""

from __future__ import annotations

import click
from click.core import ParameterSource

from pspnet_geo.config.models import BACKBONE_NAMES
from pspnet_geo.labels.read import UNLABELLED_CHOICES
from pspnet_geo.training.api import train_with
from pspnet_geo.training.augment import AUGMENTATIONS
from pspnet_geo.training.batches import SAMPLING
from pspnet_geo.training.config import load_train_config
from pspnet_geo.training.losses import LOSSES
from pspnet_geo.training.presets import dataset_settings
from pspnet_geo.training.settings import CLASS_WEIGHTING, OPTIMIZERS, TrainSettings

_DEFAULTS = TrainSettings.defaults()


def _none_or(convert):
    """A converter that maps the word ``none`` to None and anything else through ``convert``."""
    def parse(ctx: click.Context, param: click.Parameter, value):
        if value is None or str(value).lower() == "none":
            return None
        try:
            return convert(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not valid") from None
    return parse


def _bands(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


@click.command("train")
@click.argument("images", nargs=-1)
@click.option("--config", type=click.Path(dir_okay=False), default=None, show_default="none",
              help="YAML file of settings (the option names with underscores, plus images and "
                   "labels); options given on the command line win.")
@click.option("-p", "--pipeline", default=None, show_default="none",
              help="With --data: train on a benchmark dataset in this pipeline's layout "
                   "(spacenet-buildings, spacenet-roads, deepglobe-landcover, deepglobe-roads), "
                   "with its classes, bands, backbone and tile size.")
@click.option("--data", type=click.Path(file_okay=False), default=None, show_default="none",
              help="Root folder of the dataset, as the benchmark ships it (with --pipeline).")
@click.option("-l", "--labels", multiple=True,
              help="Vector label file (GeoJSON, GPKG...) or label raster on the image grid; once for "
                   "all images or once per image.  [required]")
@click.option("-o", "--out", help="Checkpoint file to write (e.g. model.pt).  [required]")
@click.option("--classes",
              help="Class names, comma-separated (index = class id; e.g. background,building), "
                   "or a YAML file with names and colours.  [required]")
@click.option("--class-column", default=_DEFAULTS["class_column"], show_default=True,
              callback=_none_or(str),
              help="Vector attribute holding class names or ids; 'none' = every feature is the one "
                   "non-background class (also used when the column is missing).")
@click.option("--unlabelled", type=click.Choice(UNLABELLED_CHOICES), default=_DEFAULTS["unlabelled"],
              show_default=True, help="What vector pixels inside no feature are: background, or "
                                      "ignored (sparse labels).")
@click.option("--background", default=str(_DEFAULTS["background"]), show_default=True,
              callback=_none_or(int),
              help="Class id of the background (makes no polygons); 'none' = no background class.")
@click.option("--bands", default=None, show_default="all bands", callback=_none_or(_bands),
              help="1-based source bands to train on, comma-separated.")
@click.option("--backbone", type=click.Choice(BACKBONE_NAMES), default=_DEFAULTS["backbone"],
              show_default=True, help="ResNet backbone.")
@click.option("--output-stride", type=int, default=_DEFAULTS["output_stride"], show_default=True,
              help="Backbone output stride, 8 (paper) or 16 (faster).")
@click.option("--tile-size", type=int, default=_DEFAULTS["tile_size"], show_default=True,
              help="Training window size in pixels; stored in the checkpoint for inference.")
@click.option("--batch-size", type=int, default=_DEFAULTS["batch_size"], show_default=True,
              help="Windows per iteration (at least 2).")
@click.option("--iterations", type=int, default=_DEFAULTS["iterations"], show_default=True,
              help="Optimisation steps (about 3.7 s each for resnet18, tile 256, batch 8 on 2 CPU cores).")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=_DEFAULTS["optimizer"],
              show_default=True, help="SGD (momentum 0.9, weight decay 1e-4) or AdamW.")
@click.option("--lr", type=float, default=None, show_default="0.01 for sgd, 1e-4 for adamw",
              help="Backbone learning rate (heads get 10x), decayed by poly (power 0.9).")
@click.option("--class-weights", type=click.Choice(CLASS_WEIGHTING), default=_DEFAULTS["class_weights"],
              show_default=True, help="Loss weights per class: none, or balanced (1/sqrt of each "
                                      "class's pixel frequency in the training area).")
@click.option("--loss", type=click.Choice(LOSSES), default=_DEFAULTS["loss"], show_default=True,
              help="cross-entropy (the paper's), focal (down-weights easy pixels) or dice (per-class overlap).")
@click.option("--augment", type=click.Choice(list(AUGMENTATIONS)), default=_DEFAULTS["augment"],
              show_default=True, help="full: flips, quarter turns, rotations up to 10 degrees, scale "
                                      "0.75-1.33, brightness and contrast +-20%; flips; or none.")
@click.option("--sampling", type=click.Choice(SAMPLING), default=_DEFAULTS["sampling"], show_default=True,
              help="rare-classes: keep windows showing rare classes more often; uniform: any window.")
@click.option("--max-nodata", type=click.FloatRange(0, 1, max_open=True), default=_DEFAULTS["max_nodata"],
              show_default=True, help="Redraw training windows with a larger share of nodata pixels.")
@click.option("--accumulate", type=click.IntRange(min=1), default=_DEFAULTS["accumulate"], show_default=True,
              help="Batches whose gradients make one step (an effective batch of batch-size x N).")
@click.option("--patience", type=click.IntRange(min=1), default=None, show_default="none",
              help="Stop after N validations without a better mIoU.")
@click.option("--loader-workers", type=click.IntRange(min=0), default=None,
              show_default="CPUs - 1, at most 4",
              help="Processes reading and augmenting training batches while the model trains "
                   "(0: in the training process). The batches do not depend on it.")
@click.option("--metrics-log", default=None, show_default="OUT with .metrics.jsonl",
              help="JSON-lines file with one line per validation, written as training goes.")
@click.option("--plot", default=None, show_default="none",
              help="Draw the loss and validation IoU curves to this .png, .svg or .pdf file.")
@click.option("--resume", is_flag=True, default=_DEFAULTS["resume"], show_default=True,
              help="Continue an interrupted run from its last validation (OUT with .state.pt).")
@click.option("--aux-weight", type=float, default=_DEFAULTS["aux_weight"], show_default=True,
              help="Weight of the auxiliary head's loss.")
@click.option("--val-fraction", type=float, default=_DEFAULTS["val_fraction"], show_default=True,
              help="Share of each image's tile cells kept for spatial validation (with sparse labels, "
                   "of each class's labelled area).")
@click.option("--val-every", type=int, default=_DEFAULTS["val_every"], show_default=True,
              help="Validate (and keep the best checkpoint) every N iterations and at the end.")
@click.option("--holdout-bounds", type=float, nargs=4, default=None, show_default="none",
              metavar="XMIN YMIN XMAX YMAX",
              help="Region in the image CRS excluded from training and validation.")
@click.option("--groups", default=None, show_default="each image its own",
              callback=lambda ctx, param, value: value.split(",") if value else None,
              help="Comma-separated ground each image shows (one name per image): images of one "
                   "group never split between training and validation.")
@click.option("--ignore-index", type=int, default=_DEFAULTS["ignore_index"], show_default=True,
              help="Label value that counts in neither loss nor score.")
@click.option("--label-values", default=None, show_default="none",
              help="Label raster values to class ids, e.g. 0=0,255=1 for a road mask stored as 0/255.")
@click.option("--seed", type=int, default=_DEFAULTS["seed"], show_default=True,
              help="Random seed (window sampling, augmentation, initialisation).")
@click.option("--device", default=_DEFAULTS["device"], show_default=True,
              help="auto (cuda if available), cpu, cuda or cuda:N.")
@click.option("--backbone-weights", default=_DEFAULTS["backbone_weights"], show_default=True,
              callback=_none_or(str),
              help="auto (ImageNet weights if already in the torch cache), imagenet (download "
                   "torchvision's ImageNet weights into the torch cache if missing, hash-checked), a "
                   "ResNet state dict file (RGB, or with the image's bands: multispectral weights), or "
                   "'none' for random initialisation.")
@click.option("--overwrite", is_flag=True, default=_DEFAULTS["overwrite"], show_default=True,
              help="Replace an existing checkpoint file.")
def train_command(images: tuple[str, ...], labels: tuple[str, ...], holdout_bounds, config, pipeline,
                  data, **options) -> None:
    """Fine-tune PSPNet on IMAGES and their labels; write the best checkpoint by validation mIoU.

    Settings come from, in rising order: the defaults, --pipeline with --data, --config, and
    the options given on the command line."""
    options.update(images=list(images), labels=list(labels), holdout_bounds=holdout_bounds or None)
    if (pipeline is None) != (data is None):
        raise click.UsageError("--pipeline and --data go together")
    if pipeline is not None:
        options = _with_config(click.get_current_context(), options, dataset_settings(pipeline, data))
    if config is not None:
        options = _with_config(click.get_current_context(), options, load_train_config(config))
    missing = [name for name in ("images", "labels", "out", "classes") if not options.get(name)]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)}: give them on the command line or in --config")
    images, labels, out = options.pop("images"), options.pop("labels"), options.pop("out")
    result = train_with(images, labels, out, TrainSettings(**options))
    score = "n/a" if result.best_miou is None else f"{result.best_miou:.4f}"
    click.echo(f"{result.checkpoint} (validation mIoU {score} at iteration {result.best_iteration})")


def _with_config(ctx: click.Context, options: dict, config: dict) -> dict:
    """``options`` with the config's values wherever the command line left the default."""
    merged = dict(options)
    for key, value in config.items():
        source = ctx.get_parameter_source(key)
        if source in (None, ParameterSource.DEFAULT):
            merged[key] = value
    return merged
