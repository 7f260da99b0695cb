"""Who is told of a ticket change, on which channel, and how one channel's queue goes out. No I/O, no clock.

``deliveries`` reads a ticket's history: each entry that is a notifiable change (``EVENT_OF_KIND``) is
matched against the subscriptions of notify.yaml, giving one ``Delivery`` per (channel, change). Its id is
built from the change's own identity (the command's event id, or the incident that raised the severity),
never from the ticket's version or the history's length, so every replay of any version of the ticket
yields the same ids. Muting is decided by the change's own time in the district's time zone.

``outgoing`` turns the deliveries a channel has ready into the requests to send: one message for one
delivery, else one digest ("另有 N 条" for what does not fit), so a storm never exceeds a vendor's limit
and nothing is dropped. ``RATE_LIMITS`` are the vendors' published limits per robot.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from handlers import chat_cards as cc
from handlers import duty, wording
from handlers import notify_channels as nc
from handlers.intervals import CompiledInterval
from schemas.config import Config, District
from schemas.enums import SEVERITY_RANK, Severity
from schemas.notify import Delivery, DeliveryPolicy, Grouping, NotifyConfig
from schemas.records import HistoryEntry, HistoryKind, Ticket

# The history entries that are notifiable changes (handlers/lifecycle.py, tickets.py, escalation.py).
EVENT_OF_KIND = {
    HistoryKind.dispatch: "dispatched",
    HistoryKind.severity_raised: "severity_raised",
    HistoryKind.reminded: "reminded",
    HistoryKind.escalated: "escalated",
    HistoryKind.reported: "reported",
    HistoryKind.return_: "returned",
    HistoryKind.redispatch: "redispatched",
    HistoryKind.rework: "rework",
    HistoryKind.reopen: "rework",
    HistoryKind.closed: "closed",
    # 派单异议: the centre is told of a dispute as of a return, and the department of the ruling as of a redispatch.
    HistoryKind.disputed: "returned",
    HistoryKind.dispute_upheld: "redispatched",
    HistoryKind.dispute_reassigned: "redispatched",
}
# Who on the duty roster is mentioned: 催办 and a red ticket the officer (值班员), 督办 and 通报 the leader (带班领导).
MENTION_ROLES = {"reminded": ("officer",), "escalated": ("leader",), "reported": ("leader",)}
RED_MENTION_ROLES = ("officer",)
MENTIONS = {"dingtalk", "wecom", "sms"}

# (window seconds, messages) per robot: DingTalk and WeCom 20 a minute, Feishu 5 a second and 100 a minute.
RATE_LIMITS: dict[str, tuple[tuple[float, int], ...]] = {
    "dingtalk": ((60.0, 20),),
    "wecom": ((60.0, 20),),
    "feishu": ((1.0, 5), (60.0, 100)),
}
# Room kept in a DingTalk digest for the @mentions appended to its text.
MENTION_ROOM = 600


@dataclass(frozen=True)
class Change:
    event: str
    at: datetime
    key: str  # what makes this change unique on its ticket
    entry: HistoryEntry  # the history entry that records it: the message says it in words


def changes(ticket: Ticket) -> list[Change]:
    found = []
    for entry in ticket.history:
        event = EVENT_OF_KIND.get(entry.kind)
        if event is not None:
            found.append(Change(event, entry.at, entry.event_id or entry.action, entry))
    return found


# ---------------------------------------------------------------- config compiled once, at start

@dataclass(frozen=True)
class Subscription:
    departments: frozenset[str]
    watchers: bool
    min_rank: int
    events: frozenset[str]
    channels: tuple[str, ...]
    mutes: tuple[CompiledInterval, ...]

    def covers(self, ticket: Ticket) -> bool:
        if ticket.department in self.departments:
            return True
        if not self.watchers:
            return False
        return bool(ticket.watchers) if not self.departments else bool(self.departments & set(ticket.watchers))


@dataclass(frozen=True)
class Channel:
    id: str
    type: str
    url: str
    secret: str | None
    sender: str | None = None
    recipients: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    card_template: str | None = None

    @property
    def robot(self) -> str:
        """The vendor's rate limit is per robot (its URL): two channels on one robot share one budget."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Rules:
    district: District
    channels: dict[str, Channel]  # only those whose URL is set in the environment
    unconfigured: tuple[str, ...]  # channel ids whose url_env is not set: nothing is queued for them
    subscriptions: tuple[Subscription, ...]
    grouping: Grouping
    delivery: DeliveryPolicy
    inbox_url: str
    member_phones: dict[str, str]  # duty roster member id -> mobile number (from the environment)


def compile_rules(notify: NotifyConfig, config: Config, environ: Mapping[str, str], inbox_url: str) -> Rules:
    channels, unconfigured = {}, []
    for channel_id, spec in notify.channels.items():
        url = environ.get(spec.url_env, "").strip()
        secret = environ.get(spec.secret_env, "").strip() if spec.secret_env else None
        # A channel whose URL or named secret is missing sends nothing (rather than unsigned, or failing forever).
        if not url or secret == "":
            unconfigured.append(channel_id)
            continue
        phones = tuple(p for p in (environ.get(name, "").strip() for name in spec.phones_env) if p)
        channels[channel_id] = Channel(channel_id, spec.type, url, secret, spec.sender, tuple(spec.recipients), phones,
                                       spec.card_template)
    intervals = {name: tuple(CompiledInterval.of(i) for i in group) for name, group in notify.time_intervals.items()}
    subscriptions = tuple(
        Subscription(frozenset(s.departments), s.watchers, SEVERITY_RANK[s.min_severity], frozenset(s.events),
                     tuple(s.channels), tuple(i for name in s.mute_time_intervals for i in intervals[name]))
        for s in notify.subscriptions)
    members = config.district.duty.members
    phones = {mid: environ.get(m.phone_env, "").strip() for mid, m in members.items()}
    return Rules(config.district, channels, tuple(unconfigured), subscriptions, notify.grouping, notify.delivery,
                 inbox_url, {mid: p for mid, p in phones.items() if p})


# ---------------------------------------------------------------- ticket -> deliveries

def mentioned(rules: Rules, ticket: Ticket, change: Change) -> list[str]:
    roles = MENTION_ROLES.get(change.event, ())
    if not roles and ticket.severity is Severity.red and change.event in ("dispatched", "severity_raised",
                                                                          "redispatched"):
        roles = RED_MENTION_ROLES
    on = duty.on_duty(rules.district, change.at)
    return [on[role].member_id for role in roles if role in on]


def deliveries(rules: Rules, ticket: Ticket, not_before: datetime) -> list[Delivery]:
    """Every (channel, change) of the ticket that a subscription asks for, changes before not_before
    left out (beyond the notification log's horizon)."""
    found: dict[str, Delivery] = {}
    record = None
    for change in changes(ticket):
        if change.at < not_before:
            continue
        local = change.at.astimezone(rules.district.tz)
        notification_id = f"{ticket.ticket_id}:{change.event}:{change.key}"
        message = None
        for sub in rules.subscriptions:
            if change.event not in sub.events or ticket.severity.rank < sub.min_rank or not sub.covers(ticket):
                continue
            # A mute interval never mutes red; a quiet silence mutes everything until it ends.
            muted = (ticket.quiet_until is not None and change.at < ticket.quiet_until) or (
                ticket.severity is not Severity.red and any(i.contains(local) for i in sub.mutes))
            for channel_id in sub.channels:
                channel = rules.channels.get(channel_id)
                delivery_id = f"{channel_id}/{notification_id}"
                if channel is None or (delivery_id in found and not found[delivery_id].muted):
                    continue
                if record is None:
                    record = nc.ticket_record(ticket)
                if message is None:
                    message = nc.render(ticket, change.event, rules.district, rules.inbox_url, change.key,
                                        said=wording.history_text(rules.district, change.entry))
                found[delivery_id] = Delivery(
                    id=delivery_id, notification_id=notification_id, channel=channel_id, ticket_id=ticket.ticket_id,
                    event=change.event, severity=ticket.severity, at=change.at, departments=ticket.inboxes,
                    muted=muted, mention=mentioned(rules, ticket, change) if channel.type in MENTIONS else [],
                    title=message.title, fields=message.fields, link=message.link,
                    description=message.description, ticket=record)
    return list(found.values())


# ---------------------------------------------------------------- a channel's queue -> requests

def ready_at(grouping: Grouping, delivery: Delivery) -> datetime:
    """When a delivery may first go out: red never waits (group_wait_red_s), the rest wait group_wait_s
    so that a burst goes out as one digest."""
    wait = grouping.group_wait_red_s if delivery.severity is Severity.red else grouping.group_wait_s
    return delivery.at + timedelta(seconds=wait)


@dataclass(frozen=True)
class SendPlan:
    """What one pass over a channel does: give up the too old, send the rest (maybe nothing yet)."""

    give_up: tuple[Delivery, ...]
    send: tuple[Delivery, ...]


def plan_send(ready: list[Delivery], attempts: Mapping[str, int], now: datetime, policy: DeliveryPolicy,
              grouping: Grouping, last_group_at: datetime | None) -> SendPlan:
    """A delivery is given up once it has failed and is older than give_up_after_s (one that only waited
    out an outage is tried first). Red goes at once; the rest at most once per group interval."""
    give_up = tuple(d for d in ready if attempts.get(d.id, 0) and (now - d.at).total_seconds() > policy.give_up_after_s)
    rest = [d for d in ready if d not in give_up]
    if last_group_at is not None and now < last_group_at + timedelta(seconds=grouping.group_interval_s):
        rest = [d for d in rest if d.severity is Severity.red]
    return SendPlan(give_up, tuple(rest))


def within_limits(channel_type: str, sent_within: Mapping[float, int], requests: int) -> bool:
    """sent_within: requests already sent to the robot in each of the vendor's windows (seconds)."""
    return all(sent_within[window] + requests <= most for window, most in RATE_LIMITS.get(channel_type, ()))


_URL_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?#'\"]+)[?#][^\s'\"]*", re.I)


def scrub(error: str) -> str:
    """An error as the log keeps it: URLs without their query (robot tokens are credentials), one line."""
    return " ".join(_URL_QUERY.sub(r"\1?…", error).split())[:300]


def backoff_s(policy: DeliveryPolicy, failures: int) -> float:
    """The wait after the n-th failure in a row: initial, doubling, capped."""
    return min(policy.retry_initial_s * 2 ** max(failures - 1, 0), policy.retry_max_s)


def requests_needed(channel: Channel, batch: list[Delivery]) -> int:
    """Vendor requests one send takes (a WeCom mention is a second message)."""
    return 2 if channel.type == "wecom" and any(d.mention for d in batch) else 1


def as_message(delivery: Delivery) -> nc.Message:
    return nc.Message(id=delivery.notification_id, event=delivery.event, severity=delivery.severity,
                      title=delivery.title, fields=list(delivery.fields), link=delivery.link,
                      description=delivery.description)


def digest_id(batch: list[Delivery]) -> str:
    return "digest-" + hashlib.sha256("\n".join(sorted(d.id for d in batch)).encode()).hexdigest()[:16]


def _fits(channel_type: str, message: nc.Message) -> bool:
    """Whether the vendor takes the message whole (no truncation marker)."""
    if channel_type == "wecom":
        content = nc.wecom_requests(message, url="")[0].json()["markdown"]["content"]
        return not content.endswith(nc.TRUNCATED)
    if channel_type == "dingtalk":
        text = nc.dingtalk_request(message, url="", secret=None, timestamp_ms=0).json()["markdown"]["text"]
        return len(text.encode()) <= nc.DINGTALK_TEXT_LIMIT - MENTION_ROOM and not text.endswith(nc.TRUNCATED)
    if channel_type == "feishu":
        return len(nc.feishu_request(message, url="", secret=None, timestamp_s=0).body) <= nc.FEISHU_BODY_LIMIT - 256
    return True


def digest(batch: list[Delivery], channel_type: str, rules: Rules) -> nc.Message:
    """Several deliveries as one message: the most severe first, as many lines as the vendor takes whole,
    and "另有 N 条" counting the rest (an SMS lists none)."""
    ordered = sorted(batch, key=lambda d: (-d.severity.rank, d.at, d.id))
    top = ordered[0].severity
    title = f"【{nc.SEVERITY_SHORT[top]}等 {len(batch)} 条工单通知】{rules.district.name}"
    link = f"{rules.inbox_url.rstrip('/')}/inbox"

    def listing(k: int) -> nc.Message:
        lines = [(d.ticket_id, d.title) for d in ordered[:k]]
        if k < len(ordered):
            lines.append(("另有", f"{len(ordered) - k} 条，详见工单系统"))
        return nc.Message(id=digest_id(batch), event="digest", severity=top, title=title, fields=lines, link=link)

    if channel_type == "sms":
        return listing(0)
    low, high = 0, len(ordered)  # the most lines that fit: fits(listing(k)) only gets false as k grows
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if _fits(channel_type, listing(mid)) else (low, mid - 1)
    return listing(low)


@dataclass(frozen=True)
class Outgoing:
    message_id: str
    http: tuple[nc.HttpRequest, ...] = ()
    email: EmailMessage | None = None


def outgoing(channel: Channel, batch: list[Delivery], rules: Rules, now: datetime) -> Outgoing:
    """The requests that carry batch (one delivery: its own message; several: one digest). Signing
    timestamps are `now`, the time of sending."""
    message = as_message(batch[0]) if len(batch) == 1 else digest(batch, channel.type, rules)
    mobiles = sorted({rules.member_phones[m] for d in batch for m in d.mention if m in rules.member_phones})
    kind = channel.type
    if kind == "dingtalk":
        requests = (nc.dingtalk_request(message, url=channel.url, secret=channel.secret,
                                        timestamp_ms=int(now.timestamp() * 1000), mobiles=mobiles),)
    elif kind == "wecom":
        requests = tuple(nc.wecom_requests(message, url=channel.url, mobiles=mobiles))
    elif kind == "feishu":
        requests = (nc.feishu_request(message, url=channel.url, secret=channel.secret,
                                      timestamp_s=int(now.timestamp())),)
    elif kind == "webhook":
        items = [(as_message(d), d.ticket) for d in batch]
        requests = (nc.webhook_request(message, items, url=channel.url, secret=channel.secret),)
    elif kind == "sms":
        phones = sorted({*mobiles, *channel.phones})
        if len(batch) == 1:
            text = nc.sms_text(message, rules.district)
        else:
            first = min(batch, key=lambda d: (-d.severity.rank, d.at, d.id))
            text = nc.sms_digest_text(len(batch), message.severity, first.title, rules.district)
        requests = (nc.sms_request(message.id, text, url=channel.url, phones=phones, secret=channel.secret),)
    else:
        return Outgoing(message.id, email=nc.email_message(message, sender=channel.sender,
                                                           recipients=list(channel.recipients), at=now))
    return Outgoing(message.id, http=requests)



# A card channel sends one card per ticket change: its buttons act on that ticket, so there is no digest.
CARD_CHANNELS = frozenset({"dingtalk_card", "wecom_card", "feishu_card"})
CARD_ROUTE_KEY = "soc"


def card_request(channel: Channel, delivery: Delivery, *, api_url: str, robot_code: str,
                 access_token: str) -> nc.HttpRequest:
    """The DingTalk interactive card for one delivery (handlers/chat_cards.py): its id from the delivery's,
    so a resend after a lost answer is the same card."""
    return cc.send_card_request(api_url, access_token, template_id=channel.card_template,
                                conversation_id=channel.url, robot_code=robot_code, route_key=CARD_ROUTE_KEY,
                                track_id=cc.out_track_id(delivery.id),
                                params=cc.card_params(as_message(delivery), delivery.ticket_id))


def wecom_card_request(channel: Channel, delivery: Delivery, *, api_url: str, agent_id: int,
                       access_token: str) -> nc.HttpRequest:
    """The WeCom template card for one delivery, to the userids of the channel's url_env."""
    return cc.wecom_card_request(api_url, access_token, agent_id=agent_id, to_users=channel.url,
                                 task_id=cc.out_track_id(delivery.id), message=as_message(delivery),
                                 ticket_id=delivery.ticket_id)


def feishu_card_request(channel: Channel, delivery: Delivery, *, api_url: str, access_token: str) -> nc.HttpRequest:
    """The Feishu message card for one delivery, to the chat of the channel's url_env."""
    return cc.feishu_send_request(api_url, access_token, channel.url,
                                  cc.feishu_card(as_message(delivery), delivery.ticket_id),
                                  uuid=cc.out_track_id(delivery.id))
