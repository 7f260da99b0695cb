"""City-management cases: parse, classify, severity boundaries, and phone numbers never leaving unmasked."""
from __future__ import annotations

import json
import re

import pytest

from handlers import city
from handlers.geo import grid_cell
from handlers.intake import to_incident
from handlers.privacy import mask_phone, mask_personal
from schemas.enums import Category, Severity
from schemas.raw import CityCategory

B, Y, O, R = Severity.blue, Severity.yellow, Severity.orange, Severity.red


def classify(ctx, data):
    return city.classify(city.parse(data), ctx)


def incident_json(ctx, data) -> str:
    raw = json.dumps(data, ensure_ascii=False).encode()
    return to_incident("city", raw, ctx).model_dump_json()


def assert_not_leaked(text: str, *numbers: str) -> None:
    """Neither the number as written nor its digits with separators removed appear in text."""
    squeezed = re.sub(r"[\s\-()（）+]", "", text)
    for number in numbers:
        assert number not in text
        digits = re.sub(r"\D", "", number)
        assert digits not in squeezed, f"{digits} leaked"
        assert digits[-8:] not in squeezed, f"{digits} leaked without its prefix"


@pytest.mark.parametrize("name, category, severity, title", [
    ("hotline_manhole", Category.city_manhole, R, "井盖缺失 · 海湾街道渔港路32号门前人行道"),
    ("grid_patrol_garbage", Category.city_sanitation, B, "垃圾满溢 · 海湾街道海滨花园3栋旁"),
    ("camera_ai_vending", Category.city_street_order, B, "占道经营 · 海湾街道渔港路菜市场东门"),
    ("app_road_damage", Category.city_road_damage, O, "道路破损 · 海湾街道桂湾二路公交站前"),
    ("hotline_noise", Category.city_noise, B, "噪音投诉 · 海湾街道新港三路酒吧街（电话136****5678）"),
    ("hotline_facility", Category.city_facility, Y, "设施损坏 · 海湾街道荔园路人行天桥"),
])
def test_captured_samples(ctx, sample, name, category, severity, title):
    data = sample("city", name)
    found = classify(ctx, data)
    assert (found.category, found.subcategory, found.severity, found.title) == (
        category, data["category"], severity, title)
    assert found.source_ref == data["case_no"]
    assert found.details["channel"] == data["channel"]
    assert found.details["case_no"] == data["case_no"]


@pytest.mark.parametrize("category, expected", [
    ("garbage_overflow", Category.city_sanitation),
    ("illegal_vending", Category.city_street_order),
    ("illegal_advertising", Category.city_street_order),
    ("damaged_facility", Category.city_facility),
    ("noise_complaint", Category.city_noise),
    ("illegal_construction", Category.city_illegal_construction),
    ("road_damage", Category.city_road_damage),
    ("manhole_cover_missing", Category.city_manhole),
    ("other", Category.city_other),
])
def test_category_mapping(ctx, sample, category, expected):
    data = sample("city", "grid_patrol_garbage")
    data["category"] = category
    assert classify(ctx, data).category is expected
    assert set(city.CATEGORY) == set(CityCategory) == set(city.LABEL)


# ------------------------------------------------------------------ severity (rules.yaml: city)

CALM = "网格巡查发现该处问题，已拍照留存。"
DANGER = "网格巡查发现该处问题，有老人经过，存在危险。"


@pytest.mark.parametrize("category, calm, dangerous", [
    ("garbage_overflow", B, B),
    ("illegal_vending", B, B),
    ("illegal_advertising", B, B),
    ("noise_complaint", B, B),
    ("other", B, B),
    ("illegal_construction", Y, Y),
    ("damaged_facility", B, Y),       # danger_mentioned >= 1 -> yellow
    ("road_damage", Y, O),            # danger_mentioned >= 1 -> orange
    ("manhole_cover_missing", O, R),  # never below orange; red when danger is mentioned
])
def test_severity_with_and_without_danger_words(ctx, sample, category, calm, dangerous):
    data = sample("city", "grid_patrol_garbage")
    data["category"] = category
    data["description"] = CALM
    assert classify(ctx, data).severity is calm
    data["description"] = DANGER
    assert classify(ctx, data).severity is dangerous


@pytest.mark.parametrize("description", [
    "井盖缺失，有儿童在附近玩耍", "路面塌陷", "护栏掉落", "Pedestrian INJURED near the hole", "DANGER: open manhole",
])
def test_danger_words(ctx, sample, description):
    data = sample("city", "hotline_manhole")
    data["description"] = description
    assert classify(ctx, data).severity is R


def test_hotline_channel_alone_does_not_raise_severity(ctx, sample):
    data = sample("city", "grid_patrol_garbage")
    data.update(channel="hotline_12345", description=CALM)
    assert classify(ctx, data).severity is B


# ------------------------------------------------------------------ identity and time

def test_identity_is_the_grid_cell_and_observed_at_is_reported_at(ctx, sample, config):
    data = sample("city", "hotline_manhole")
    found = classify(ctx, data)
    assert found.identity == grid_cell(22.5062, 113.9483, config.rules.dedup.grid_m)
    assert found.observed_at.isoformat() == "2026-05-12T09:02:11+08:00"
    # The same manhole reported through the app: same place, same identity.
    other = sample("city", "hotline_manhole")
    other.update(case_no="APP-20260512-3310", channel="mobile_app", lat=22.50621, lon=113.94831)
    assert classify(ctx, other).identity == found.identity


# ------------------------------------------------------------------ personal data

@pytest.mark.parametrize("name", ["hotline_manhole", "grid_patrol_garbage", "camera_ai_vending",
                                  "app_road_damage", "hotline_noise", "hotline_facility"])
def test_no_captured_phone_number_reaches_the_incident(ctx, sample, name):
    data = sample("city", name)
    text = incident_json(ctx, data)
    in_description = re.findall(r"(?:\+86 )?[\d（(][\d（）() -]{9,}\d", data["description"])
    assert in_description, "every captured city sample carries a phone number in its description"
    assert_not_leaked(text, data["reporter_phone"], *in_description)
    assert "****" in json.loads(text)["description"]


def test_reporter_phone_is_kept_masked(ctx, sample):
    found = classify(ctx, sample("city", "hotline_manhole"))
    assert found.details["reporter_phone"] == "138****8000"
    assert found.description.endswith("请联系138****8000（王女士）。")
    found = classify(ctx, sample("city", "app_road_damage"))
    assert found.details["reporter_phone"] == "861****1234"
    assert "请联系0755-****5678或137****1234。" in found.description


def test_no_reporter_phone_no_detail(ctx, sample):
    data = sample("city", "grid_patrol_garbage")
    del data["reporter_phone"]
    assert "reporter_phone" not in classify(ctx, data).details


@pytest.mark.parametrize("written, masked", [
    ("13800138000", "138****8000"),
    ("138-0013-8000", "138****8000"),
    ("138 0013 8000", "138****8000"),
    ("+86 138 0013 8000", "138****8000"),
    ("+8613800138000", "138****8000"),
    ("0755-26881234", "0755-****1234"),
    ("075526881234", "0755-****1234"),
    ("(0755)26881234", "0755-****1234"),
    ("（0755）26881234", "0755-****1234"),
    ("0755 2688 1234", "0755-****1234"),
    ("0755-2688-1234", "0755-****1234"),
    ("010-62345678", "010-****5678"),
])
def test_phone_formats_in_a_description(ctx, sample, written, masked):
    data = sample("city", "hotline_noise")
    data["description"] = f"市民反映噪音扰民，联系电话{written}，请回复。"
    data["reporter_phone"] = written
    text = incident_json(ctx, data)
    assert_not_leaked(text, written)
    assert f"联系电话{masked}，请回复。" in text


@pytest.mark.parametrize("text", [
    "2026-05-12 09:30 渔港路18号3栋502室",     # dates, times, house numbers
    "案件编号20260512001，水位4.52米",           # long ids and decimals are not phones
    "12345热线转办",
])
def test_masking_leaves_other_numbers_alone(text):
    assert mask_personal(text) == text


@pytest.mark.parametrize("value, masked", [
    ("13800138000", "138****8000"), ("138-0013-8000", "138****8000"), ("0755-26881234", "075****1234"),
    ("12345", "****"), ("", "****"),
])
def test_mask_phone_field(value, masked):
    assert mask_phone(value) == masked
