"""Photo evidence on the closed loop (handlers/lifecycle.py): who may upload, and routing.yaml's rule that some
categories are resolved only with a photo taken after the work."""
from __future__ import annotations

import pytest
import yaml

from handlers import lifecycle
from handlers.lifecycle import AFTER_PHOTO_NEEDED, Verdict
from handlers.permissions import may_act
from schemas.accounts import UserRole
from schemas.config import load_config
from schemas.enums import Category, Source
from schemas.evidence import EvidenceStage
from schemas.records import HistoryKind
from tests.unit.photos import picture
from tests.unit.test_config import errors_of
from tests.unit.test_lifecycle import CENTRE, OTHER, A, S, applied, event, make_incident, minutes, new_ticket, rejected

MANHOLE = "city_management"  # city_manhole routes here
# Road damage, manhole covers, garbage and waterlogging (deploy/config/routing.yaml says why these).
PHOTO_CATEGORIES = [Category.city_road_damage, Category.city_manhole, Category.city_sanitation,
                    Category.flood_waterlogging]


def manhole_ticket(config):
    ticket = new_ticket(config, make_incident(category=Category.city_manhole, source=Source.city))
    assert ticket.department == MANHOLE
    return ticket


def accepted_manhole(config):
    ticket = manhole_ticket(config)
    return applied(config, ticket, event(A.accept, ticket.department, minutes(1)))


def test_the_shipped_rule_lists_road_damage_manholes_garbage_and_waterlogging(config):
    assert config.routing.evidence.after_photo_to_resolve == PHOTO_CATEGORIES


def test_a_photo_is_an_entry_naming_the_image_with_its_stage_and_position(config):
    ticket = accepted_manhole(config)
    done = applied(config, ticket, event(A.evidence, ticket.department, minutes(2), note="井盖缺失",
                                         photo=picture(EvidenceStage.before)))
    entry = done.history[-1]
    assert (entry.kind, entry.photo, entry.note, done.status, done.version) == (
        HistoryKind.evidence, picture(EvidenceStage.before), "井盖缺失", S.accepted, ticket.version + 1)


def test_the_owner_and_the_centre_upload_another_department_does_not(config):
    ticket = accepted_manhole(config)
    applied(config, ticket, event(A.evidence, CENTRE, minutes(2), photo=picture(EvidenceStage.other)))
    assert rejected(config, ticket, event(A.evidence, OTHER, minutes(2), photo=picture(EvidenceStage.other))) == \
        f"only the owning department ({MANHOLE}) may evidence this ticket"
    assert rejected(config, ticket, event(A.evidence, ticket.department, minutes(2))) == "evidence needs 'photo'"
    assert may_act(UserRole.clerk, A.evidence) and may_act(UserRole.duty_officer, A.evidence)
    assert not may_act(UserRole.leader, A.evidence) and not may_act(UserRole.admin, A.evidence)


def test_a_manhole_ticket_is_resolved_only_with_a_photo_after_the_work(config):
    ticket = accepted_manhole(config)
    resolve = event(A.resolve, ticket.department, minutes(10), note="已更换井盖")
    assert rejected(config, ticket, resolve) == AFTER_PHOTO_NEEDED
    assert AFTER_PHOTO_NEEDED.startswith("此类工单须先上传处置后照片")
    before = applied(config, ticket, event(A.evidence, ticket.department, minutes(2),
                                           photo=picture(EvidenceStage.before)))
    assert rejected(config, before, resolve) == AFTER_PHOTO_NEEDED  # a photo before the work is not one after
    after = applied(config, before, event(A.evidence, ticket.department, minutes(9), photo=picture(EvidenceStage.after)))
    assert applied(config, after, resolve).status is S.resolved


def test_a_photo_taken_after_the_resolve_does_not_make_that_resolve_pass_when_processed_again(config):
    # A resolve refused for want of a photo, processed again after one came: still refused (exact replays).
    ticket = accepted_manhole(config)
    late = applied(config, ticket, event(A.evidence, ticket.department, minutes(12), photo=picture(EvidenceStage.after)))
    assert rejected(config, late, event(A.resolve, ticket.department, minutes(10), note="done")) == AFTER_PHOTO_NEEDED


def test_after_a_rework_the_photo_must_be_taken_again(config):
    ticket = accepted_manhole(config)
    ticket = applied(config, ticket, event(A.evidence, ticket.department, minutes(2), photo=picture(EvidenceStage.after)))
    ticket = applied(config, ticket, event(A.resolve, ticket.department, minutes(3), note="done"))
    ticket = applied(config, ticket, event(A.verify, CENTRE, minutes(4), passed=False, note="井盖仍松动"))
    ticket = applied(config, ticket, event(A.accept, ticket.department, minutes(5)))
    assert rejected(config, ticket, event(A.resolve, ticket.department, minutes(6), note="done")) == AFTER_PHOTO_NEEDED


def test_categories_not_listed_resolve_without_a_photo(config):
    ticket = new_ticket(config)  # a traffic accident
    ticket = applied(config, ticket, event(A.accept, ticket.department, minutes(1)))
    assert applied(config, ticket, event(A.resolve, ticket.department, minutes(2), note="done")).status is S.resolved


def test_a_closed_ticket_takes_no_photo(config):
    ticket = new_ticket(config)
    for ev in (event(A.accept, ticket.department, minutes(1)), event(A.resolve, ticket.department, minutes(2), note="ok"),
               event(A.verify, CENTRE, minutes(3), passed=True)):
        ticket = applied(config, ticket, ev)
    assert rejected(config, ticket, event(A.evidence, ticket.department, minutes(4),
                                          photo=picture(EvidenceStage.after))) == "cannot evidence a ticket that is closed"


def test_a_replayed_upload_changes_nothing(config):
    ticket = accepted_manhole(config)
    upload = event(A.evidence, ticket.department, minutes(2), photo=picture(EvidenceStage.after))
    once = applied(config, ticket, upload)
    assert lifecycle.apply(config, once, upload.model_copy(update={"ticket_id": once.ticket_id}), upload.at).verdict \
        is Verdict.replayed


@pytest.mark.parametrize("change, line", [
    (lambda d: d.update(evidence={"after_photo_to_resolve": ["city_manhole", "manhole"]}),
     "routing.yaml: evidence.after_photo_to_resolve.1: Input should be "
     + ", ".join(f"'{c.value}'" for c in list(Category)[:-1]) + f" or '{list(Category)[-1].value}'"),
    (lambda d: d.update(evidence={"after_photo_to_resolve": ["city_manhole", "city_manhole"]}),
     "routing.yaml: evidence.after_photo_to_resolve: categories listed more than once: city_manhole"),
    (lambda d: d.update(evidence={"after_photos": ["city_manhole"]}),
     "routing.yaml: evidence.after_photos: Extra inputs are not permitted"),
])
def test_the_rule_is_checked_with_exact_messages(copy, change, line):
    path = copy / "routing.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    [error] = errors_of(copy)
    assert error == line


def test_without_the_section_no_category_needs_a_photo(copy):
    path = copy / "routing.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    del data["evidence"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    assert load_config(copy).routing.evidence.after_photo_to_resolve == []
