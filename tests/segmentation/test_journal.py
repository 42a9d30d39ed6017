"""The block journal of a resumable run: saved block results, read back by a rerun."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
from rasterio.windows import Window

from pspnet_geo.errors import OutputError
from pspnet_geo.segmentation.blocks import BlockResult
from pspnet_geo.segmentation.journal import BlockJournal
from pspnet_geo.segmentation.stitch import Contribution, FinishedPiece, PartialPiece
from pspnet_geo.segmentation.tiling import TilePlan

PLAN = TilePlan(160, 160, 64, 16, 1)
IDENTITY = {"scene": "a.tif", "settings": {"tile": 64, "bands": (1, 2, 3)}}


def result(row: int, col: int, seed: int = 0) -> BlockResult:
    """A block result with a finished interior and one seam share of known arrays."""
    block = next(b for b in PLAN.blocks if (b.row, b.col) == (row, col))
    rng = np.random.default_rng(seed)
    finished = FinishedPiece(Window(0, 0, 4, 3), rng.integers(0, 3, (3, 4)).astype(np.uint8),
                             rng.integers(0, 256, (2, 3, 4)).astype(np.uint8))
    contribution = Contribution((row, col), Window(48, 0, 16, 5),
                                rng.normal(size=(2, 5, 16)).astype(np.float32), np.ones((5, 16), np.float32))
    partial = PartialPiece((0, 1), [contribution], rng.random((5, 16)) > 0.5)
    return BlockResult(block, tiles_run=1, tiles_skipped=0, finished=[finished], partials=[partial])


def test_saved_results_come_back_whole_in_block_order(tmp_path):
    journal = BlockJournal(tmp_path / "out.parts", IDENTITY)
    assert journal.done == set() and list(journal.saved()) == []
    originals = {(1, 0): result(1, 0, seed=1), (0, 2): result(0, 2, seed=2)}
    for saved in originals.values():
        journal.save(saved)
    again = BlockJournal(tmp_path / "out.parts", IDENTITY)
    assert again.done == {(0, 2), (1, 0)}
    loaded = list(again.saved())
    assert [(r.block.row, r.block.col) for r in loaded] == [(0, 2), (1, 0)]
    for back in loaded:
        original = originals[(back.block.row, back.block.col)]
        assert back.block == original.block and back.tiles_run == 1 and back.tiles_skipped == 0
        np.testing.assert_array_equal(back.finished[0].classes, original.finished[0].classes)
        np.testing.assert_array_equal(back.finished[0].probabilities, original.finished[0].probabilities)
        assert back.finished[0].window == original.finished[0].window
        (partial,), (expected,) = back.partials, original.partials
        assert partial.key == expected.key
        np.testing.assert_array_equal(partial.valid, expected.valid)
        np.testing.assert_array_equal(partial.contributions[0].weighted_logits,
                                      expected.contributions[0].weighted_logits)


def test_a_folder_of_another_run_is_discarded_with_a_warning(tmp_path, caplog):
    BlockJournal(tmp_path / "out.parts", IDENTITY).save(result(0, 0))
    other = {**IDENTITY, "scene": "b.tif"}
    with caplog.at_level(logging.WARNING, logger="pspnet_geo.segmentation.journal"):
        journal = BlockJournal(tmp_path / "out.parts", other)
    assert journal.done == set() and list(journal.saved()) == []
    assert "another run" in caplog.text
    assert not list((tmp_path / "out.parts").glob("block_*"))
    assert BlockJournal(tmp_path / "out.parts", IDENTITY).done == set()  # the old run is gone for good


def test_the_same_identity_matches_after_a_json_round_trip(tmp_path, caplog):
    BlockJournal(tmp_path / "out.parts", IDENTITY).save(result(0, 0))
    with caplog.at_level(logging.WARNING):
        journal = BlockJournal(tmp_path / "out.parts", {"settings": {"bands": [1, 2, 3], "tile": 64}, "scene": "a.tif"})
    assert journal.done == {(0, 0)} and not caplog.records


@pytest.mark.parametrize("identity", [None, "{not json", "[1, 2]"])
def test_a_folder_this_module_did_not_make_is_refused_and_left_alone(tmp_path, identity):
    folder = tmp_path / "out.parts"
    BlockJournal(folder, IDENTITY).save(result(0, 0))
    (folder / "mine.txt").write_text("the user's")
    if identity is None:
        (folder / "identity.json").unlink()
    else:
        (folder / "identity.json").write_text(identity)
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(OutputError, match="not made by a resumable pspnet-geo run"):
        BlockJournal(folder, IDENTITY)
    assert sorted(p.name for p in folder.iterdir()) == before


def test_another_runs_folder_loses_only_the_files_this_module_writes(tmp_path):
    folder = tmp_path / "out.parts"
    BlockJournal(folder, IDENTITY).save(result(0, 0))
    (folder / "block_1_1.pkl").write_bytes(b"an older version's block")
    (folder / "notes.txt").write_text("the user's")
    BlockJournal(folder, {**IDENTITY, "scene": "b.tif"}).remove()
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


class _Plant:
    """Unpickling this would create ``marker``: what a planted file would try."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_planted_files_cannot_run_code(tmp_path):
    folder, marker = tmp_path / "out.parts", tmp_path / "ran"
    journal = BlockJournal(folder, IDENTITY)
    journal.save(result(0, 0))
    with (folder / "block_0_1.pkl").open("wb") as stream:          # the old format: never read
        pickle.dump(_Plant(marker), stream)
    with (folder / "block_1_0.npz").open("wb") as stream:          # an object array: refused
        np.savez(stream, meta=np.array([_Plant(marker)], dtype=object))
    again = BlockJournal(folder, IDENTITY)
    assert again.done == {(0, 0), (1, 0)}
    assert [(r.block.row, r.block.col) for r in again.saved()] == [(0, 0)]
    assert again.done == {(0, 0)} and not (folder / "block_1_0.npz").exists()   # to run again
    assert not marker.exists()


def test_damaged_blocks_are_discarded_to_run_again(tmp_path, caplog):
    folder = tmp_path / "out.parts"
    BlockJournal(folder, IDENTITY).save(result(0, 0))
    with np.load(folder / "block_0_0.npz") as stored:
        arrays = dict(stored)
    arrays["f0_classes"] = arrays["f0_classes"][:, :2]
    with (folder / "block_0_0.npz").open("wb") as stream:
        np.savez(stream, **arrays)
    (folder / "block_1_1.npz").write_bytes(b"cut short")
    journal = BlockJournal(folder, IDENTITY)
    with caplog.at_level(logging.WARNING, logger="pspnet_geo.segmentation.journal"):
        assert list(journal.saved()) == [] and journal.done == set()
    assert "shape" in caplog.text and "block_1_1.npz is damaged" in caplog.text


def test_half_written_and_foreign_files_are_not_blocks(tmp_path):
    folder = tmp_path / "out.parts"
    BlockJournal(folder, IDENTITY).save(result(1, 1))
    (folder / "block_0_0.tmp").write_bytes(b"interrupted")
    (folder / "block_x_1.pkl").write_bytes(b"junk")
    (folder / "notes.pkl").write_bytes(b"junk")
    journal = BlockJournal(folder, IDENTITY)
    assert journal.done == {(1, 1)}
    assert [(r.block.row, r.block.col) for r in journal.saved()] == [(1, 1)]


def test_remove_deletes_the_folder(tmp_path):
    journal = BlockJournal(tmp_path / "out.parts", IDENTITY)
    journal.save(result(0, 0))
    journal.remove()
    assert not (tmp_path / "out.parts").exists()
    journal.remove()  # twice is harmless


def test_a_folder_that_cannot_be_made_is_an_output_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="resumable blocks"):
        BlockJournal(tmp_path / "file" / "out.parts", IDENTITY)


def test_a_symbolic_link_in_place_of_the_folder_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out.parts").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="symbolic link"):
        BlockJournal(tmp_path / "out.parts", IDENTITY)
    assert list((tmp_path / "elsewhere").iterdir()) == []
