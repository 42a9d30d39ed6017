"""Outputs are written under temporary names; what a killed run left of them goes next time."""

from __future__ import annotations

import pytest

from pspnet_geo.outputs import atomic_output, remove_stale_temporaries


def test_a_killed_runs_temporaries_of_the_same_output_are_removed_and_nothing_else(tmp_path):
    stale = [tmp_path / ".roads.0123abcd.partial.gpkg", tmp_path / ".roads.0123abcd.partial.gpkg-journal",
             tmp_path / ".roads.ffff0000.partial.gpkg.spool.gpkg"]
    kept = [tmp_path / ".roads.notes.partial.gpkg", tmp_path / ".roads.0123abcd.partial.tif",
            tmp_path / ".roads2.0123abcd.partial.gpkg", tmp_path / "roads.gpkg.bak",
            tmp_path / ".roads.0123abcde.partial.gpkg"]
    for path in stale + kept:
        path.write_text("x")
    assert sorted(remove_stale_temporaries(tmp_path / "roads.gpkg")) == sorted(stale)
    assert all(path.exists() for path in kept) and not any(path.exists() for path in stale)


def test_an_atomic_output_clears_its_stale_temporaries_and_leaves_none_of_its_own(tmp_path):
    (tmp_path / ".mask.89abcdef.partial.tif").write_text("left by a killed run")
    with atomic_output(tmp_path / "mask.tif") as temporary:
        assert [p.name for p in tmp_path.iterdir()] == []
        temporary.write_text("done")
    assert [p.name for p in tmp_path.iterdir()] == ["mask.tif"]
    with pytest.raises(ValueError), atomic_output(tmp_path / "other.tif") as temporary:
        temporary.write_text("half")
        raise ValueError
    assert [p.name for p in tmp_path.iterdir()] == ["mask.tif"]


def test_an_output_without_an_extension_leaves_other_outputs_temporaries_alone(tmp_path):
    other = tmp_path / ".x.0123abcd.partial.tif"
    mine = tmp_path / ".x.0123abcd.partial"
    other.write_text("another output's")
    mine.write_text("x's")
    assert remove_stale_temporaries(tmp_path / "x") == [mine]
    assert other.exists()


def test_an_outputs_auxiliary_file_moves_with_it_and_an_older_ones_goes(tmp_path):
    out = tmp_path / "mask.tif"
    with atomic_output(out) as temporary:
        temporary.write_bytes(b"new")
        (tmp_path / f"{temporary.name}.aux.xml").write_text("<PAMDataset/>")
    assert (tmp_path / "mask.tif.aux.xml").read_text() == "<PAMDataset/>"
    with atomic_output(out, overwrite=True) as temporary:
        temporary.write_bytes(b"newer, without one")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.tif"]


def test_a_killed_runs_staging_file_is_removed_with_its_temporary(tmp_path):
    left = [tmp_path / ".mask.0123abcd.partial.tif.staged.tif", tmp_path / ".mask.0123abcd.partial.tif.ovr.tmp",
            tmp_path / ".mask.0123abcd.partial.tif.msk.ovr.tmp"]
    for path in left:
        path.write_text("x")
    assert sorted(remove_stale_temporaries(tmp_path / "mask.tif")) == sorted(left)
