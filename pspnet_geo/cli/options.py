"""Click option types shared by several commands."""

from __future__ import annotations

import click


class BandList(click.ParamType):
    """A comma-separated list of 1-based band indexes, e.g. ``4,3,2``."""

    name = "BANDS"

    def convert(self, value, param, ctx) -> list[int]:
        if isinstance(value, list):
            return value
        try:
            bands = [int(part) for part in str(value).split(",") if part.strip()]
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of band numbers", param, ctx)
        if not bands or min(bands) < 1:
            self.fail(f"{value!r}: band numbers start at 1", param, ctx)
        return bands


class AssetList(click.ParamType):
    """A comma-separated list of STAC asset keys or common band names, e.g. ``red,green,blue``."""

    name = "ASSETS"

    def convert(self, value, param, ctx) -> list[str]:
        if isinstance(value, list):
            return value
        names = [part.strip() for part in str(value).split(",") if part.strip()]
        if not names:
            self.fail(f"{value!r} names no asset", param, ctx)
        return names


class BackgroundClass(click.ParamType):
    """A class id, ``none`` (no background class), or nothing given (``auto``: the pipeline's
    background, else 0)."""

    name = "ID|none"

    def convert(self, value, param, ctx) -> int | None | str:
        if value is None or isinstance(value, int) or value == "auto":
            return value
        if str(value).lower() == "none":
            return None
        try:
            return int(value)
        except ValueError:
            self.fail(f"must be a class id or 'none', not {value!r}", param, ctx)
