"""The block journal of a resumable run: saved block results, read back by a rerun."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest

from pspnet_geo.errors import OutputError
from pspnet_geo.segmentation.blocks import BlockResult
from pspnet_geo.segmentation.journal import BlockJournal
from pspnet_geo.segmentation.stitch import Accumulator, Contribution, FinishedPiece, PartialPiece
from pspnet_geo.segmentation.tiling import TilePlan

PLAN = TilePlan(160, 160, 64, 16, 1)
IDENTITY = {"scene": "a.tif", "settings": {"tile": 64, "bands": (1, 2, 3)}}
CLASSES = 2


def result(row: int, col: int, seed: int = 0) -> BlockResult:
    """A block result of PLAN: its interior finished, and its share of each seam around it (a
    sum for the seams it leads, a crop per tile for the others), of random arrays."""
    block = next(b for b in PLAN.blocks if (b.row, b.col) == (row, col))
    rng = np.random.default_rng(seed)
    pieces = PLAN.pieces_of(block)
    finished = []
    for piece in (p for p in pieces if len(p.blocks) == 1):
        shape = (piece.window.height, piece.window.width)
        finished.append(FinishedPiece(piece.window, rng.integers(0, 2, shape).astype(np.uint8),
                                      rng.integers(0, 256, (CLASSES, *shape)).astype(np.uint8)))
    partials = []
    for seam in (p for p in pieces if len(p.blocks) > 1):
        shape = (seam.window.height, seam.window.width)
        summed = Accumulator(seam.window, CLASSES) if seam.leader == (row, col) else None
        partial = PartialPiece(seam.key, [], rng.random(shape) > 0.5, summed)
        for tile in (t for t in block.tiles if t in seam.tiles):
            logits = rng.normal(size=(CLASSES, PLAN.tile, PLAN.tile)).astype(np.float32)
            partial.take(Contribution(tile, PLAN.tile_window(*tile), logits, PLAN.tile_weights(*tile)), seam.window)
        partials.append(partial)
    return BlockResult(block, tiles_run=1, tiles_skipped=0, finished=finished, partials=partials, non_finite=3)


def open_journal(folder, identity=IDENTITY) -> BlockJournal:
    return BlockJournal(folder, identity, PLAN, CLASSES)


def test_saved_results_come_back_whole_in_block_order(tmp_path):
    journal = open_journal(tmp_path / "out.parts")
    assert journal.done == set() and list(journal.saved()) == []
    originals = {(1, 0): result(1, 0, seed=1), (0, 2): result(0, 2, seed=2)}
    for saved in originals.values():
        journal.save(saved)
    again = open_journal(tmp_path / "out.parts")
    assert again.done == {(0, 2), (1, 0)}
    loaded = list(again.saved())
    assert [(r.block.row, r.block.col) for r in loaded] == [(0, 2), (1, 0)]
    for back in loaded:
        original = originals[(back.block.row, back.block.col)]
        assert back.block == original.block and back.tiles_run == 1 and back.tiles_skipped == 0
        np.testing.assert_array_equal(back.finished[0].classes, original.finished[0].classes)
        np.testing.assert_array_equal(back.finished[0].probabilities, original.finished[0].probabilities)
        assert back.finished[0].window == original.finished[0].window
        assert back.non_finite == 3 and len(back.partials) == len(original.partials) > 1
        for partial, expected in zip(back.partials, original.partials):
            assert partial.key == expected.key
            np.testing.assert_array_equal(partial.valid, expected.valid)
            assert (partial.summed is None) == (expected.summed is None)
            if expected.summed is not None:
                np.testing.assert_array_equal(partial.summed.numerator, expected.summed.numerator)
                np.testing.assert_array_equal(partial.summed.weight_sum, expected.summed.weight_sum)
            for got, want in zip(partial.contributions, expected.contributions, strict=True):
                assert (got.tile, got.window) == (want.tile, want.window)
                np.testing.assert_array_equal(got.weighted_logits, want.weighted_logits)


def test_a_folder_of_another_run_is_discarded_with_a_warning(tmp_path, caplog):
    open_journal(tmp_path / "out.parts").save(result(0, 0))
    other = {**IDENTITY, "scene": "b.tif"}
    with caplog.at_level(logging.WARNING, logger="pspnet_geo.segmentation.journal"):
        journal = open_journal(tmp_path / "out.parts", other)
    assert journal.done == set() and list(journal.saved()) == []
    assert "another run" in caplog.text
    assert not list((tmp_path / "out.parts").glob("block_*"))
    assert open_journal(tmp_path / "out.parts").done == set()  # the old run is gone for good


def test_the_same_identity_matches_after_a_json_round_trip(tmp_path, caplog):
    open_journal(tmp_path / "out.parts").save(result(0, 0))
    with caplog.at_level(logging.WARNING):
        journal = open_journal(tmp_path / "out.parts", {"settings": {"bands": [1, 2, 3], "tile": 64}, "scene": "a.tif"})
    assert journal.done == {(0, 0)} and not caplog.records


@pytest.mark.parametrize("identity", [None, "{not json", "[1, 2]"])
def test_a_folder_this_module_did_not_make_is_refused_and_left_alone(tmp_path, identity):
    folder = tmp_path / "out.parts"
    open_journal(folder).save(result(0, 0))
    (folder / "mine.txt").write_text("the user's")
    if identity is None:
        (folder / "identity.json").unlink()
    else:
        (folder / "identity.json").write_text(identity)
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(OutputError, match="not made by a resumable pspnet-geo run"):
        open_journal(folder)
    assert sorted(p.name for p in folder.iterdir()) == before


def test_another_runs_folder_loses_only_the_files_this_module_writes(tmp_path):
    folder = tmp_path / "out.parts"
    open_journal(folder).save(result(0, 0))
    (folder / "block_1_1.pkl").write_bytes(b"an older version's block")
    (folder / "notes.txt").write_text("the user's")
    open_journal(folder, {**IDENTITY, "scene": "b.tif"}).remove()
    # The identity stays beside the user's file, so the folder is still known as a journal's.
    assert sorted(p.name for p in folder.iterdir()) == ["identity.json", "notes.txt"]
    assert open_journal(folder).done == set()
    (folder / "notes.txt").unlink()
    open_journal(folder).remove()
    assert not folder.exists()


def test_an_empty_folder_is_taken_and_planted_links_are_never_followed(tmp_path):
    folder, target = tmp_path / "out.parts", tmp_path / "precious.txt"
    folder.mkdir()                                       # a run killed before its identity was written
    target.write_text("keep me")
    (folder / "identity.json.tmp").symlink_to(target)
    journal = open_journal(folder)
    (folder / "block_0_0.tmp").symlink_to(target)
    journal.save(result(0, 0))
    assert target.read_text() == "keep me" and journal.done == set() and (folder / "block_0_0.npz").is_file()
    assert open_journal(folder).done == {(0, 0)}


class _Plant:
    """Unpickling this would create ``marker``: what a planted file would try."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_planted_files_cannot_run_code(tmp_path):
    folder, marker = tmp_path / "out.parts", tmp_path / "ran"
    journal = open_journal(folder)
    journal.save(result(0, 0))
    with (folder / "block_0_1.pkl").open("wb") as stream:          # the old format: never read
        pickle.dump(_Plant(marker), stream)
    with (folder / "block_1_0.npz").open("wb") as stream:          # an object array: refused
        np.savez(stream, meta=np.array([_Plant(marker)], dtype=object))
    again = open_journal(folder)
    assert again.done == {(0, 0), (1, 0)}
    assert [(r.block.row, r.block.col) for r in again.saved()] == [(0, 0)]
    assert again.done == {(0, 0)} and not (folder / "block_1_0.npz").exists()   # to run again
    assert not marker.exists()


def test_damaged_blocks_are_discarded_to_run_again(tmp_path, caplog):
    folder = tmp_path / "out.parts"
    open_journal(folder).save(result(0, 0))
    with np.load(folder / "block_0_0.npz") as stored:
        arrays = dict(stored)
    arrays["f0_classes"] = arrays["f0_classes"][:, :2]
    with (folder / "block_0_0.npz").open("wb") as stream:
        np.savez(stream, **arrays)
    (folder / "block_1_1.npz").write_bytes(b"cut short")
    open_journal(folder).save(result(1, 0))
    whole = (folder / "block_1_0.npz").read_bytes()
    (folder / "block_1_0.npz").write_bytes(whole[: len(whole) // 2])        # a zip cut in half
    open_journal(folder).save(result(0, 1))
    with np.load(folder / "block_0_1.npz") as stored:
        arrays = dict(stored)
    arrays["meta"] = np.frombuffer(b"[1, 2]", np.uint8)                       # JSON, but not a description
    arrays["p0_valid"] = arrays["p0_valid"][:1]
    with (folder / "block_0_1.npz").open("wb") as stream:
        np.savez(stream, **arrays)
    journal = open_journal(folder)
    with caplog.at_level(logging.WARNING, logger="pspnet_geo.segmentation.journal"):
        assert list(journal.saved()) == [] and journal.done == set()
    assert "shape" in caplog.text and "block_1_1.npz is damaged" in caplog.text
    assert "block_1_0.npz is damaged" in caplog.text and "block_0_1.npz is damaged" in caplog.text
    assert not list(folder.glob("block_*"))


def test_half_written_and_foreign_files_are_not_blocks(tmp_path):
    folder = tmp_path / "out.parts"
    open_journal(folder).save(result(1, 1))
    (folder / "block_0_0.tmp").write_bytes(b"interrupted")
    (folder / "block_x_1.pkl").write_bytes(b"junk")
    (folder / "notes.pkl").write_bytes(b"junk")
    journal = open_journal(folder)
    assert journal.done == {(1, 1)}
    assert [(r.block.row, r.block.col) for r in journal.saved()] == [(1, 1)]


def test_remove_deletes_the_folder(tmp_path):
    journal = open_journal(tmp_path / "out.parts")
    journal.save(result(0, 0))
    journal.remove()
    assert not (tmp_path / "out.parts").exists()
    journal.remove()  # twice is harmless


def test_a_folder_that_cannot_be_made_is_an_output_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="resumable blocks"):
        open_journal(tmp_path / "file" / "out.parts")


def test_a_symbolic_link_in_place_of_the_folder_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out.parts").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="symbolic link"):
        open_journal(tmp_path / "out.parts")
    assert list((tmp_path / "elsewhere").iterdir()) == []
