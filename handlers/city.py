"""City-management cases: 12345 hotline, grid patrols, camera AI, the citizens' app."""
from __future__ import annotations

from handlers.base import Classification, Context, Heard
from handlers.geo import grid_cell
from handlers.privacy import mask_phone, mask_personal
from handlers.severity import grade
from schemas.enums import Category
from schemas.raw import CityCategory, CityChannel, CityReport

SOURCE = "city"
MODEL = CityReport

CATEGORY = {
    CityCategory.garbage_overflow: Category.city_sanitation,
    CityCategory.illegal_vending: Category.city_street_order,
    CityCategory.illegal_advertising: Category.city_street_order,
    CityCategory.damaged_facility: Category.city_facility,
    CityCategory.noise_complaint: Category.city_noise,
    CityCategory.illegal_construction: Category.city_illegal_construction,
    CityCategory.road_damage: Category.city_road_damage,
    CityCategory.manhole_cover_missing: Category.city_manhole,
    CityCategory.other: Category.city_other,
}
LABEL = {
    CityCategory.garbage_overflow: "垃圾满溢",
    CityCategory.illegal_vending: "占道经营",
    CityCategory.illegal_advertising: "违规广告",
    CityCategory.damaged_facility: "设施损坏",
    CityCategory.noise_complaint: "噪音投诉",
    CityCategory.illegal_construction: "违法建设",
    CityCategory.road_damage: "道路破损",
    CityCategory.manhole_cover_missing: "井盖缺失",
    CityCategory.other: "其他",
}
# Words that mean someone could get hurt; rules.yaml raises severity on them.
DANGER_WORDS = ("受伤", "危险", "儿童", "老人", "坠落", "掉落", "塌", "触电", "injur", "danger")


def parse(data: dict) -> CityReport:
    return CityReport.model_validate(data)


def device(report: CityReport, ctx: Context) -> Heard | None:
    """Citizen and patrol reports: no heartbeat."""
    return None


def classify(report: CityReport, ctx: Context) -> Classification:
    description = mask_personal(report.description)
    lowered = report.description.lower()
    measures = {
        "danger_mentioned": float(any(word in lowered for word in DANGER_WORDS)),
        "hotline": float(report.channel is CityChannel.hotline_12345),
    }
    details = {"channel": report.channel.value, "address": mask_personal(report.address),
               "case_no": report.case_no}
    if report.reporter_phone:
        details["reporter_phone"] = mask_phone(report.reporter_phone)
    if report.media_url:
        details["media_url"] = report.media_url
    if report.attributes:
        details["attributes"] = report.attributes
    return Classification(
        category=CATEGORY[report.category],
        subcategory=report.category.value,
        severity=grade(ctx.config.rules.city[report.category.value], measures),
        title=f"{LABEL[report.category]} · {mask_personal(report.address)}",
        source_ref=report.case_no,
        identity=grid_cell(report.lat, report.lon, ctx.config.rules.dedup.grid_m),
        observed_at=report.reported_at,
        lat=report.lat,
        lon=report.lon,
        description=description,
        details=details,
    )
