"""A ticket's history as people read it: one sentence per entry, in Chinese (or English when asked), at the
district's local time, naming people and departments by their display names from district.yaml. No I/O.

The board, the inbox, the notifications and the daily report all show what ``history_text`` says, so an
entry reads the same wherever it appears. The pipeline's own steps are said to be the system's (系统);
the machine notes they carry (ids, ISO times, "orange -> red") are never shown: the entry's structured
details are. A person's note is shown as they wrote it, personal data masked.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from handlers.privacy import mask_personal
from handlers.tickets import PIPELINE
from schemas.config import District
from schemas.enums import Severity
from schemas.evidence import EvidenceStage
from schemas.records import HistoryEntry, HistoryKind, Ticket

Lang = Literal["zh", "en"]
K = HistoryKind

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SEVERITY = {"zh": {Severity.red: "红色", Severity.orange: "橙色", Severity.yellow: "黄色", Severity.blue: "蓝色"},
             "en": {Severity.red: "red", Severity.orange: "orange", Severity.yellow: "yellow", Severity.blue: "blue"}}
_STAGE = {"zh": {"accept": "签收", "resolve": "办结", "followup": "回访", "ruling": "异议裁定",
                 "support_accept": "协办签收", "support_feedback": "协办反馈"},
          "en": {"accept": "accept", "resolve": "resolve", "followup": "follow-up call", "ruling": "dispute ruling",
                 "support_accept": "supporting accept", "support_feedback": "supporting feedback"}}
_STEP = {"zh": {K.reminded: "催办", K.escalated: "督办", K.reported: "通报"},
         "en": {K.reminded: "System reminder", K.escalated: "System escalation",
                K.reported: "System report to the leadership"}}
_FOLLOWUP = {"zh": {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意，发回重办",
                    "unreachable": "未接通"},
             "en": {"satisfied": "satisfied", "basically_satisfied": "basically satisfied",
                    "unsatisfied": "unsatisfied, sent back", "unreachable": "not reached"}}
_SYSTEM = {"zh": "系统", "en": "System"}

_PHOTO_STAGE = {"zh": {EvidenceStage.before: "处置前照片", EvidenceStage.after: "处置后照片",
                       EvidenceStage.other: "现场照片", None: "照片"},
                "en": {EvidenceStage.before: "a photo before the work", EvidenceStage.after: "a photo after the work",
                       EvidenceStage.other: "a photo", None: "a photo"}}


# Sources, categories and matcher labels as the pages call them (streams/http/static/common.js `category`,
# `source` and `matcher`; tests/unit/test_review.py holds the two to the same words).
_SOURCE = {
    "zh": {"traffic": "交通", "flood": "三防", "city": "城市管理", "construction": "建设工地"},
    "en": {"traffic": "Traffic", "flood": "Flood", "city": "City", "construction": "Construction"},
}
_CATEGORY = {
    "zh": {"traffic_accident": "交通事故", "traffic_congestion": "交通拥堵", "traffic_violation": "交通违法",
           "traffic_facility": "交通设施故障", "road_obstruction": "道路障碍", "flood_water_level": "水位超警",
           "flood_rainfall": "强降雨", "flood_waterlogging": "内涝积水", "flood_pump_station": "泵站故障",
           "typhoon": "台风预警", "city_sanitation": "环境卫生", "city_street_order": "街面秩序",
           "city_facility": "市政设施", "city_noise": "噪声扰民", "city_illegal_construction": "违法建设",
           "city_road_damage": "道路破损", "city_manhole": "井盖缺失", "city_other": "其他城市管理",
           "site_unregistered": "未报备工地", "site_out_of_hours": "超时段施工", "site_permit_invalid": "许可失效",
           "site_safety": "施工安全隐患", "site_noise": "施工噪声", "site_dust": "扬尘超标",
           "flood_device_offline": "三防设备离线", "site_device_offline": "工地设备离线"},
    "en": {"traffic_accident": "Traffic accident", "traffic_congestion": "Congestion",
           "traffic_violation": "Traffic violation", "traffic_facility": "Traffic facility fault",
           "road_obstruction": "Road obstruction", "flood_water_level": "Water level", "flood_rainfall": "Heavy rainfall",
           "flood_waterlogging": "Waterlogging", "flood_pump_station": "Pump station", "typhoon": "Typhoon signal",
           "city_sanitation": "Sanitation", "city_street_order": "Street order", "city_facility": "Public facility",
           "city_noise": "Noise", "city_illegal_construction": "Illegal construction", "city_road_damage": "Road damage",
           "city_manhole": "Manhole cover", "city_other": "Other city issue", "site_unregistered": "Unregistered site",
           "site_out_of_hours": "Out-of-hours work", "site_permit_invalid": "Permit invalid", "site_safety": "Site safety",
           "site_noise": "Site noise", "site_dust": "Dust", "flood_device_offline": "Flood device offline",
           "site_device_offline": "Site device offline"},
}
_MATCHER = {
    "zh": {"source": "来源", "category": "类别", "subcategory": "子类", "severity": "等级", "community": "社区",
           "department": "部门", "ref": "站点/设施"},
    "en": {"source": "Source", "category": "Category", "subcategory": "Subcategory", "severity": "Severity",
           "community": "Community", "department": "Department", "ref": "Site/facility"},
}


def category_name(category: str, lang: Lang = "zh") -> str:
    return _CATEGORY[lang].get(category, category)


def source_name(source: str, lang: Lang = "zh") -> str:
    return _SOURCE[lang].get(source, source)


def community_name(district: District, community: str | None, lang: Lang = "zh") -> str:
    """As the pages name it: its Chinese name, or its id capitalised in English (district.yaml has no English name)."""
    found = district.communities.get(community or "")
    if found is None or lang == "en":
        return (community or "").capitalize()
    return found.name


def matcher_text(district: District, name: str, value: str, is_regex: bool, is_equal: bool, lang: Lang = "zh") -> str:
    """One matcher of a silence as the board shows it: 类别=内涝积水, 社区≠望海."""
    op = ("!~" if not is_equal else "=~") if is_regex else ("≠" if not is_equal else "=")
    if is_regex or name in ("subcategory", "ref"):
        said = value
    elif name == "source":
        said = source_name(value, lang)
    elif name == "category":
        said = category_name(value, lang)
    elif name == "severity":
        said = _SEVERITY[lang].get(Severity(value), value) if value in Severity.__members__ else value
    elif name == "community":
        said = community_name(district, value, lang)
    else:
        said = department_name(district, value, lang)
    return f"{_MATCHER[lang][name]}{op}{said}"


def local_time(district: District, at: datetime, lang: Lang = "zh") -> str:
    """12月6日 14:23 (6 Dec 14:23 in English), in the district's time zone."""
    local = at.astimezone(district.tz)
    if lang == "en":
        return f"{local.day} {_MONTHS[local.month - 1]} {local:%H:%M}"
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def department_name(district: District, department: str | None, lang: Lang = "zh") -> str:
    found = district.departments.get(department or "")
    if found is None:
        return department or ""
    return (found.name_en or found.name) if lang == "en" else found.name


def _names(district: District, departments: list[str], lang: Lang) -> str:
    return ("、" if lang == "zh" else ", ").join(department_name(district, d, lang) for d in departments)


def history_text(district: District, entry: HistoryEntry, lang: Lang = "zh") -> str:
    """The entry as one sentence, beginning with its local time."""
    return f"{local_time(district, entry.at, lang)} {_sentence(district, entry, lang)}"


def _who(district: District, entry: HistoryEntry, lang: Lang) -> str:
    if entry.user is not None:
        name = mask_personal(entry.user.name)
        dept = department_name(district, entry.user.department, lang)
        if not dept or dept in name:
            return name
        return f"{name}（{dept}）" if lang == "zh" else f"{name} ({dept})"
    if entry.by == PIPELINE:
        return _SYSTEM[lang]
    if entry.by in district.departments:
        return department_name(district, entry.by, lang)
    return mask_personal(entry.by)


def _said(entry: HistoryEntry, lang: Lang) -> str:
    note = entry.note.strip()
    if not note:
        return ""
    return f"：{mask_personal(note)}" if lang == "zh" else f": {mask_personal(note)}"


def _sentence(district: District, entry: HistoryEntry, lang: Lang) -> str:
    zh = lang == "zh"
    who, said = _who(district, entry, lang), _said(entry, lang)
    dept = department_name(district, entry.department, lang)
    kind = entry.kind

    def at(when: datetime | None) -> str:
        return local_time(district, when, lang) if when else ""

    if kind is K.dispatch:
        return f"系统派单至{dept}" if zh else f"System dispatched it to {dept}"
    if kind is K.occurrence:
        return "系统：同一问题再次报告，已并入本单" if zh else "System: reported again, merged into this ticket"
    if kind is K.severity_raised:
        if entry.from_severity is None or entry.to_severity is None:
            return "系统提高了等级" if zh else "System raised the severity"
        old, new = _SEVERITY[lang][entry.from_severity], _SEVERITY[lang][entry.to_severity]
        return f"系统将等级由{old}升为{new}" if zh else f"System raised the severity from {old} to {new}"
    if kind in (K.reminded, K.escalated, K.reported):
        step = _STEP[lang][kind]
        if entry.stage is None or entry.due is None:
            return f"系统自动{step}{dept}" if zh else f"{step}{' for ' + dept if dept else ''}"
        stage = _STAGE[lang][entry.stage]
        if zh:
            return f"系统自动{step}{dept}：{stage}时限 {at(entry.due)}"
        return f"{step}{' for ' + dept if dept else ''}: {stage} due {at(entry.due)}"
    if kind is K.accept:
        return f"{who}签收{said}" if zh else f"{who} accepted{said}"
    if kind is K.resolve:
        return f"{who}办结{said}" if zh else f"{who} resolved it{said}"
    if kind is K.return_:
        return f"{who}退回{said}" if zh else f"{who} returned it{said}"
    if kind is K.extension_requested:
        return (f"{who}申请延期至 {at(entry.until)}{said}" if zh
                else f"{who} asked for an extension until {at(entry.until)}{said}")
    if kind is K.extension_approved:
        return (f"{who}同意延期至 {at(entry.until)}{said}" if zh
                else f"{who} approved the extension until {at(entry.until)}{said}")
    if kind is K.extension_rejected:
        return f"{who}不同意延期{said}" if zh else f"{who} rejected the extension{said}"
    if kind is K.closed:
        if entry.overridden:
            waiting = _names(district, entry.overridden, lang)
            return (f"{who}在协办单位{waiting}未反馈时核验通过，工单关闭{said}" if zh
                    else f"{who} verified and closed it before {waiting} gave feedback{said}")
        return f"{who}核验通过，工单关闭{said}" if zh else f"{who} verified and closed it{said}"
    if kind is K.rework:
        return f"{who}核验未通过，退回返工{said}" if zh else f"{who} found it not done: sent back for rework{said}"
    if kind is K.redispatch:
        source = department_name(district, entry.from_department, lang)
        return (f"{who}将工单由{source}改派至{dept}{said}" if zh
                else f"{who} reassigned it from {source} to {dept}{said}")
    if kind is K.reopen:
        return f"{who}重新打开工单{said}" if zh else f"{who} reopened it{said}"
    if kind is K.comment:
        instruction = (entry.user.department if entry.user else entry.actor) == district.leadership
        if zh:
            return f"{who}{'批示' if instruction else '备注'}{said}"
        return f"{who} {'instructed' if instruction else 'commented'}{said}"
    if kind is K.acknowledged:
        return f"{who}已知悉" if zh else f"{who} acknowledged it"
    if kind is K.followup:
        result = _FOLLOWUP[lang].get(entry.result or "", "")
        return (f"{who}回访{'：' + result if result else ''}{said}" if zh
                else f"{who} called the citizen back{': ' + result if result else ''}{said}")
    if kind is K.related:
        other = entry.related_ticket_id or ""
        if zh:
            part = {"cause": "起因工单", "effect": "受其影响的工单"}.get(entry.role or "", "工单")
            return f"系统关联{part} {other}"
        part = {"cause": "its cause, ticket", "effect": "an affected ticket,"}.get(entry.role or "", "ticket")
        return f"System linked it to {part} {other}"
    if kind is K.recurred:
        other = entry.related_ticket_id or ""
        return f"问题再次出现，系统已新开工单 {other}" if zh else f"The problem came back: new ticket {other}"
    if kind is K.response:
        if entry.level is None:
            return "系统按应急响应调整时限" if zh else "System applied the emergency response"
        return (f"系统按{entry.level}级应急响应调整时限" if zh
                else f"System applied the level {entry.level} emergency response")
    if kind is K.silenced:
        return "开单时处于屏蔽期，暂不通知" if zh else "Opened during a silence: not notified yet"
    if kind is K.source_cleared:
        return "监测数据已恢复正常，请核实后办结" if zh else "The readings are back to normal: check before closing"
    if kind is K.device_recovered:
        return "设备已恢复上报" if zh else "The device reports again"
    if kind is K.evidence:
        stage = _PHOTO_STAGE[lang][entry.photo.stage if entry.photo is not None else None]
        return f"{who}上传{stage}{said}" if zh else f"{who} uploaded {stage}{said}"
    if kind is K.checked:
        line = (entry.item or 0) + 1
        if entry.done is False:
            return f"{who}取消勾选清单第{line}项{said}" if zh else f"{who} unticked checklist line {line}{said}"
        return f"{who}完成清单第{line}项{said}" if zh else f"{who} ticked checklist line {line}{said}"
    if kind is K.stood_down:
        return f"{who}宣布预案终止，本任务撤销{said}" if zh else f"{who} stood the plan down: task cancelled{said}"
    if kind in (K.resource_assigned, K.resource_released):
        name = entry.note.strip() or entry.resource_id or ""
        if kind is K.resource_assigned:
            return f"{who}调派{name}到本单" if zh else f"{who} sent {name} to this ticket"
        return f"{who}撤回{name}" if zh else f"{who} released {name}"
    if kind is K.support_added:
        added = _names(district, entry.departments or [], lang)
        if entry.by == PIPELINE:
            return f"系统派{added}协办" if zh else f"System asked {added} to support"
        return f"{who}增派{added}协办{said}" if zh else f"{who} asked {added} to support{said}"
    if kind is K.support_accepted:
        return f"{who}签收协办任务{said}" if zh else f"{who} accepted its supporting part{said}"
    if kind is K.support_feedback:
        return f"{who}反馈协办情况{said}" if zh else f"{who} reported on its supporting part{said}"
    if kind is K.disputed:
        suggest = (f"，建议派至{dept}" if zh else f", suggesting {dept}") if entry.department else ""
        return f"{who}提出派单异议{suggest}{said}" if zh else f"{who} disputed the dispatch{suggest}{said}"
    if kind is K.dispute_upheld:
        return (f"{who}裁定维持原派单，退回{dept}重新办理{said}" if zh
                else f"{who} upheld the dispatch: back to {dept} with new deadlines{said}")
    if kind is K.dispute_reassigned:
        source = department_name(district, entry.from_department, lang)
        return (f"{who}裁定异议成立，由{source}改派至{dept}{said}" if zh
                else f"{who} ruled for the dispute: reassigned from {source} to {dept}{said}")
    # A kind added without its words: tests/unit/test_wording.py says every kind has a sentence.
    raise ValueError(f"no words for a history entry of kind {kind.value}")


def readable(district: District, ticket: Ticket) -> dict:
    """The ticket as JSON for the pages, each history entry with its sentence in Chinese (`text`) and
    English (`text_en`) beside the record's own fields."""
    body = ticket.model_dump(mode="json")
    for shown, entry in zip(body["history"], ticket.history, strict=True):
        shown["text"] = history_text(district, entry)
        shown["text_en"] = history_text(district, entry, "en")
    return body
