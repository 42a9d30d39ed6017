"""The postprocess section of a preset: typed settings, and one-line errors for mistakes."""

from __future__ import annotations

import pytest

from pspnet_geo.errors import PipelineError
from pspnet_geo.config.pipelines import list_pipelines
from pspnet_geo.config.postprocess import CenterlineSettings, parse_postprocess

CLASSES = ("background", "building", "road", "field", "forest")


def test_steps_run_in_the_fixed_order_whatever_the_order_written():
    config = parse_postprocess({
        "sieve_m2": 2,
        "classes": {
            "building": {"regularize_m": 0.5, "remove_specks_m2": 10, "fill_holes_m2": 4},
            "road": {"simplify_m": 0.5, "centerlines": {"max_width_m": 20, "spur_length_m": 8,
                                                        "smooth_m": 1}},
        },
        "coverage": {"classes": ["forest", "field"], "simplify_m": 2, "sliver_area_m2": 50},
    }, CLASSES, "p.yaml")
    assert config.sieve_m2 == 2.0
    assert [step for step, _ in config.classes[1].steps] == [
        "fill_holes_m2", "remove_specks_m2", "regularize_m"]
    assert config.classes[2].centerlines == CenterlineSettings(20.0, 8.0, 1.0)
    assert config.coverage.classes == (3, 4)
    assert not config.is_empty
    assert parse_postprocess({}, CLASSES, "p.yaml").is_empty


@pytest.mark.parametrize("value, message", [
    ({"sieve": 1}, r"postprocess: unknown key 'sieve'"),
    ({"sieve_m2": -1}, r"sieve_m2 must be above 0"),
    ({"sieve_m2": True}, r"sieve_m2 must be a number, not bool"),
    ({"classes": {"house": {}}}, r"'house' is not a class \(classes: background, building"),
    ({"classes": {"building": {"regularise_m": 1}}}, r"classes.building: unknown key 'regularise_m'"),
    ({"classes": {"road": {"centerlines": {"max_width_m": 20}}}}, r"centerlines: missing key"),
    ({"coverage": {"classes": [], "simplify_m": 1, "sliver_area_m2": 1}}, "at least one class"),
    ({"coverage": {"classes": ["field"], "simplify_m": 1, "sliver_area_m2": 1},
      "classes": {"field": {"remove_specks_m2": 4}}}, "'field' is in coverage"),
])
def test_mistakes_are_one_line_errors_naming_the_place(value, message):
    with pytest.raises(PipelineError, match=message) as caught:
        parse_postprocess(value, CLASSES, "p.yaml")
    assert str(caught.value).startswith("p.yaml: postprocess") and "\n" not in str(caught.value)


def test_every_builtin_preset_has_clean_up_it_can_describe():
    for pipeline in list_pipelines():
        assert not pipeline.postprocess.is_empty
        assert "clean-up: " in pipeline.describe() and "clean-up: none" not in pipeline.describe()
