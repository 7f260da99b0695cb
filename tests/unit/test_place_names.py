"""A spot is named as a person would say it (handlers/geo.py place_name): the place of the district map it
is at, else the nearest road or river (附近 when it is not on it), else its community, else the district.
The map's named features reach the handlers in the loaded config (schemas/config.py Config.places)."""
from __future__ import annotations

import re

from handlers import construction, flood
from handlers.geo import place_name


def test_the_loaded_config_carries_the_maps_named_features(config):
    names = {p.id: (p.layer, p.name) for p in config.places}
    assert names["RD-XFL"] == ("road", "学府路")
    assert names["WLG-01"] == ("underpass", "望海路下穿通道")
    assert next(p for p in config.places if p.id == "WLG-01").points == ((113.928, 22.519),)


def test_a_spot_at_a_place_of_the_map_is_named_by_it_before_the_road_it_is_on(config):
    # The 望海路 underpass lies on 望海路: about 10 m from both, the place is the finer name.
    assert place_name(config, 22.519, 113.9281) == "望海路下穿通道"


def test_a_spot_on_a_road_is_named_by_the_road(config):
    assert place_name(config, 22.5362, 113.915) == "学府路"  # about 20 m north of it


def test_a_spot_a_street_away_from_the_road_is_near_it(config):
    assert place_name(config, 22.5345, 113.915) == "学府路附近"  # about 170 m south of it


def test_without_a_map_the_community_names_the_spot(config):
    assert place_name(config.model_copy(update={"places": ()}), 22.53, 113.91) == "荔园社区"


def test_a_spot_outside_the_district_is_near_the_district_never_its_coordinates(config):
    assert place_name(config, 22.6, 114.1) == "海湾街道附近"


def test_an_unregistered_site_is_titled_by_the_road_it_is_near(ctx, sample):
    event = construction.parse(sample("construction", "activity_unregistered"))  # 22.50850, 113.91020
    found = construction.classify(event, ctx)
    assert found.title == "滨海大道附近 未报备施工"
    assert not re.search(r"\d", found.title)


def flood_title(ctx, sample, **change) -> str:
    reading = flood.parse({**sample("flood", "water_level_near_warning"), **change})
    return flood.classify(reading, ctx).title


def test_a_gauge_is_titled_by_the_name_its_feed_gives(ctx, sample):
    assert flood_title(ctx, sample, station_id="WL-01", station_name="海湾河上游1号水位计") == "海湾河上游1号水位计 水位 4.32 m"


def test_a_gauge_without_a_name_in_its_feed_is_titled_by_its_name_on_the_map(ctx, sample):
    assert flood_title(ctx, sample, station_id="WL-01") == "海湾河上游水位站 水位 4.32 m"


def test_a_gauge_named_nowhere_keeps_its_id(ctx, sample):
    assert flood_title(ctx, sample) == "SW-XG-01 水位 4.32 m"
