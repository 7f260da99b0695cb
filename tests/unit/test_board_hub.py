"""The board streams' slots (per person, per role, the reserve for duty officers and wall screens), the
stream ids they resume from, and a stream's share of the hub's entries."""
from __future__ import annotations

import pytest

from schemas.accounts import UserRole
from schemas.config import BoardStreams, StreamsPerRole
from streams.http.board_hub import MAX_BACKLOG, BoardEntry, EntryId, Holder, Refused, Slots, Subscriber

LIMITS = BoardStreams(total=10, reserved=3, per_person=2, wall_screens=2,
                      per_role=StreamsPerRole(clerk=4, supervisor=4, duty_officer=4, leader=4, admin=4, service=4))


def clerk(n: int) -> Holder:
    return Holder(f"clerk{n}", UserRole.clerk, wall=False)


DUTY = Holder("duty", UserRole.duty_officer, wall=False)
WALL = Holder("wall", UserRole.service, wall=True)


def refusal(slots: Slots, holder: Holder) -> tuple[int, str]:
    with pytest.raises(Refused) as refused:
        slots.take(holder)
    return refused.value.status, refused.value.error


def test_one_person_past_their_streams_is_told_so_in_chinese_first():
    slots = Slots(LIMITS)
    slots.take(clerk(1))
    slots.take(clerk(1))
    status, error = refusal(slots, clerk(1))
    assert status == 429 and error.startswith("您已打开 2 个看板，已达每人上限")
    slots.take(clerk(2))  # another person is not affected


def test_a_role_past_its_streams_is_refused_as_the_worker_being_busy():
    slots = Slots(LIMITS)
    for n in range(4):
        slots.take(clerk(n))
    status, error = refusal(slots, clerk(9))
    assert status == 503 and error.startswith("经办人的看板连接已满（4 个）")
    slots.take(Holder("lead", UserRole.leader, wall=False))


def test_the_reserved_slots_are_the_duty_officers_and_the_wall_screens_alone():
    slots = Slots(LIMITS)
    people = [Holder(f"{role.value}{n}", role, wall=False)
              for role in (UserRole.clerk, UserRole.supervisor) for n in range(4)]
    for holder in people[:7]:  # total 10 less the 3 reserved
        slots.take(holder)
    status, error = refusal(slots, people[7])
    assert status == 503 and error.startswith("本服务器的看板连接已满")
    slots.take(DUTY)
    slots.take(WALL)
    slots.take(WALL)
    assert refusal(slots, DUTY)[0] == 503  # all 10 taken now


def test_the_wall_screens_share_one_count_of_their_own():
    slots = Slots(LIMITS)
    slots.take(WALL)
    slots.take(WALL)
    status, error = refusal(slots, WALL)
    assert status == 429 and error.startswith("大屏看板连接已达上限（2 个）")
    slots.take(Holder("service:ops_centre", UserRole.service, wall=False))


def test_a_slot_given_back_is_taken_again():
    slots = Slots(LIMITS)
    slots.take(clerk(1))
    slots.take(clerk(1))
    slots.give_back(clerk(1))
    slots.take(clerk(1))
    slots.give_back(clerk(1))
    slots.give_back(clerk(1))
    assert (slots.total, dict(slots.per_person), slots.per_role[UserRole.clerk]) == (0, {}, 0)


@pytest.mark.parametrize("text, parsed", [
    ("1700000000000-3", EntryId(1700000000000, 3)),
    ("1700000000000", EntryId(1700000000000, 0)),
    ("0-0", EntryId(0, 0)),
    ("not-an-id", None), ("99999999999999999999-0x", None), ("-", None), ("0-0\u00e9", None), ("", None),
    ("\u0661\u0662-3", None), ("18446744073709551616-0", None),
])
def test_a_resume_id_is_a_redis_stream_id_or_nothing(text, parsed):
    assert EntryId.parse(text) == parsed


def test_stream_ids_order_as_redis_orders_them():
    assert EntryId(5, 10) < EntryId(6, 0) and EntryId(6, 2) < EntryId(6, 10)
    assert str(EntryId(6, 10)) == "6-10"


def entry(n: int, seen_by: str | None) -> BoardEntry:
    return BoardEntry(EntryId(n, 0), seen_by, f"frame {n}".encode())  # type: ignore[arg-type]


def test_a_stream_is_offered_only_what_its_principal_may_see():
    subscriber = Subscriber(lambda ticket: ticket == "mine", reads_all=False, connected=lambda: True)
    for n, ticket in enumerate(["mine", "theirs", None, "mine"]):
        subscriber.offer(entry(n, ticket))
    assert [e.entry_id.ms for e in subscriber.pending] == [0, 3]
    everything = Subscriber(lambda ticket: False, reads_all=True, connected=lambda: True)
    everything.offer(entry(0, None))
    assert len(everything.pending) == 1


def test_a_stream_that_falls_too_far_behind_is_ended_so_its_board_catches_up_from_redis():
    subscriber = Subscriber(lambda ticket: True, reads_all=False, connected=lambda: True)
    for n in range(MAX_BACKLOG + 1):
        subscriber.offer(entry(n, "mine"))
    assert subscriber.ended == "behind" and not subscriber.pending and subscriber.wake.is_set()
