"""The caller's GDAL configuration, carried to every thread and Dask worker that reads.

A caller sets GDAL options with ``rasterio.Env(...)`` (credentials from a session, ``AWS_REGION``,
``AWS_NO_SIGN_REQUEST``, ``GDAL_HTTP_*``, ``GDAL_DISABLE_READDIR_ON_OPEN``...), or ``rio`` does
for its ``--aws-profile`` and the like. rasterio keeps that Env per thread: rasterio 1.4 sets
options process-wide (``CPLSetConfigOption``) only in the main thread and thread-locally
(``CPLSetThreadLocalConfigOption``) in any other, so an Env entered in another thread (a web
server's, a batch's) never reaches our reading threads, and no Env reaches a Dask worker
process. So a run takes a snapshot of its caller's options where it starts
(:meth:`GdalOptions.capture`); the snapshot travels with each block job (it pickles), and the
worker reads, and opens its datasets, under an equal Env (:meth:`GdalOptions.applied`),
thread-local in a worker thread, so concurrent blocks never undo each other's options.

Options set as environment variables need none of this: GDAL reads them in every thread, and
Dask's local workers inherit them. Credentials in the snapshot travel in the tasks' arguments
(to a remote scheduler too); its repr shows the option names only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import rasterio
import rasterio.env

MACHINE_OPTIONS = frozenset({"GDAL_DATA", "PROJ_DATA", "PROJ_LIB"})
"""Options naming this installation's own files, which rasterio sets in every process for
itself: another machine's worker must keep its own."""


@dataclass(frozen=True)
class GdalOptions:
    """GDAL configuration options as (name, value) pairs, sorted by name; none by default."""

    items: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def capture(cls) -> GdalOptions:
        """The options of the rasterio Env active in this thread (none without one)."""
        if not rasterio.env.hasenv():
            return cls()
        options = rasterio.env.getenv()
        return cls(tuple(sorted(((name, value) for name, value in options.items() if name not in MACHINE_OPTIONS),
                                key=lambda item: item[0])))

    def __repr__(self) -> str:
        return f"GdalOptions({', '.join(name for name, _ in self.items)})"    # values may be secrets

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Within the block, GDAL in this thread sees these options; a no-op when it already does
        (the caller's own thread) or there are none."""
        if not self.items or self._active():
            yield
            return
        # rasterio.Env refuses AWS keys as options (they come from a session); setenv, inside a
        # bare Env of this thread, takes them all, and wins over what the Env's session sets.
        with rasterio.Env():
            rasterio.env.setenv(**dict(self.items))
            yield

    def _active(self) -> bool:
        """Whether this thread's rasterio Env already holds every option with its value."""
        if not rasterio.env.hasenv():
            return False
        current = rasterio.env.getenv()
        return all(name in current and current[name] == value for name, value in self.items)
