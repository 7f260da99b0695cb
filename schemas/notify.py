"""notify.yaml: notification channels, subscriptions, mute intervals and grouping, strict and cross-checked.

The file is optional: without it nothing is notified (``load_notify`` returns None). Errors read like
those of schemas/config.py: ``notify.yaml: subscriptions.0.channels.1: undefined channel 'flood_dutty'``.

Secrets and URLs never appear in the file, only the names of the environment variables holding them:

- ``dingtalk``: ``url_env`` the robot's webhook (``https://oapi.dingtalk.com/robot/send?access_token=...``),
  ``secret_env`` its signing secret (``SEC...``, 加签). Both required.
- ``feishu``: ``url_env`` the custom bot's webhook (``https://open.feishu.cn/open-apis/bot/v2/hook/...``),
  ``secret_env`` its signing secret (签名校验). Both required.
- ``wecom``: ``url_env`` the group robot's webhook (``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...``).
  WeCom robots have no signing: ``secret_env`` is refused.
- ``webhook``: ``url_env`` any HTTPS endpoint, ``secret_env`` the key of the body's HMAC (``X-SOC-Signature``).
- ``sms``: ``url_env`` a generic HTTP SMS gateway, ``secret_env`` optional (the same HMAC header as a webhook);
  ``phones_env``: environment variables each holding one mobile number (until the duty roster supplies them).
- ``dingtalk_card``: ``url_env`` the group's openConversationId; ``card_template`` the id of the interactive
  card template (互动卡片) with the 签收/已知悉/查看 buttons. The app that sends it and takes its callback is set by
  ``SOC_DINGTALK_*`` (streams/settings.py, handlers/chat_cards.py): ``secret_env`` is refused.
- ``wecom_card``: ``url_env`` the WeCom userids to send to, joined by ``|``. The app's template card
  (按钮交互型) with 签收/已知悉, the card itself opening the ticket; sent by the app of ``SOC_WECOM_*``:
  ``secret_env`` is refused.
- ``feishu_card``: ``url_env`` the group's chat_id. The app's message card with 签收/已知悉/查看, shared
  (update_multi); sent by the app of ``SOC_FEISHU_*``: ``secret_env`` is refused.
- ``email``: ``url_env`` an SMTP URL (``smtp://user@host:587``), ``secret_env`` optional, the SMTP password;
  ``sender`` and ``recipients`` are plain addresses.

``time_intervals`` use Alertmanager's time-interval syntax (``times`` with ``start_time``/``end_time``
``HH:MM``, ``weekdays`` such as ``monday:friday``), read in the district's time zone. Unlike Alertmanager, an
``end_time`` earlier than the ``start_time`` spans midnight (``22:00``-``07:30``), as the contract's ``night``
interval is written. Red tickets are never muted and never wait (``group_wait_red_s`` is at most 5 s).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.config import Config, ConfigError, Strict, _read
from schemas.enums import Severity
from schemas.intervals import TimeInterval

FILE = "notify.yaml"

# The ticket changes a subscription can ask for (the closed list of the contract).
EVENTS = ("dispatched", "severity_raised", "reminded", "escalated", "reported", "returned", "redispatched",
          "rework", "closed")
Event = Literal["dispatched", "severity_raised", "reminded", "escalated", "reported", "returned", "redispatched",
                "rework", "closed"]
ChannelType = Literal["dingtalk", "dingtalk_card", "wecom", "wecom_card", "feishu", "feishu_card", "webhook", "email",
                      "sms"]

EnvName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")

# Which types need, allow or refuse each optional field.
_SECRET_REQUIRED = {"dingtalk", "feishu", "webhook"}
_SECRET_REFUSED = {"wecom"}


class Channel(Strict):
    type: ChannelType
    url_env: EnvName
    secret_env: EnvName | None = None
    # email only
    sender: str | None = None
    recipients: list[str] = []
    # sms only
    phones_env: list[EnvName] = []
    # dingtalk_card only
    card_template: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,128}$")] | None = None

    @field_validator("sender")
    @classmethod
    def _sender(cls, address: str | None) -> str | None:
        if address is not None and not _EMAIL.match(address):
            raise ValueError(f"not an email address: {address!r}")
        return address

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, addresses: list[str]) -> list[str]:
        for address in addresses:
            if not _EMAIL.match(address):
                raise ValueError(f"not an email address: {address!r}")
        return addresses

    @model_validator(mode="after")
    def _fields_for_type(self) -> Channel:
        kind = self.type
        if kind in _SECRET_REQUIRED and self.secret_env is None:
            raise ValueError(f"a {kind} channel needs secret_env (the signing secret)")
        if kind == "dingtalk_card" and self.secret_env is not None:
            raise ValueError("a dingtalk_card channel is sent by the DingTalk app (SOC_DINGTALK_*): remove secret_env")
        if kind == "wecom_card" and self.secret_env is not None:
            raise ValueError("a wecom_card channel is sent by the WeCom app (SOC_WECOM_*): remove secret_env")
        if kind == "feishu_card" and self.secret_env is not None:
            raise ValueError("a feishu_card channel is sent by the Feishu app (SOC_FEISHU_*): remove secret_env")
        if kind in _SECRET_REFUSED and self.secret_env is not None:
            raise ValueError(f"a {kind} robot has no signing secret: remove secret_env")
        if kind == "email":
            if self.sender is None:
                raise ValueError("an email channel needs sender")
            if not self.recipients:
                raise ValueError("an email channel needs recipients")
        elif self.sender is not None or self.recipients:
            raise ValueError(f"sender and recipients are for email channels, not {kind}")
        if kind != "sms" and self.phones_env:
            raise ValueError(f"phones_env is for sms channels, not {kind}")
        if kind == "dingtalk_card" and self.card_template is None:
            raise ValueError("a dingtalk_card channel needs card_template (the card template's id)")
        if kind != "dingtalk_card" and self.card_template is not None:
            raise ValueError(f"card_template is for dingtalk_card channels, not {kind}")
        return self


class Subscription(Strict):
    departments: list[str] = []
    # Also notify for every department a ticket copies (Ticket.watchers, e.g. ops_centre on red tickets).
    watchers: bool = False
    min_severity: Severity = Severity.blue
    events: Annotated[list[Event], Field(min_length=1)]
    channels: Annotated[list[str], Field(min_length=1)]
    # Never mutes red.
    mute_time_intervals: list[str] = []

    @model_validator(mode="after")
    def _whom(self) -> Subscription:
        if not self.departments and not self.watchers:
            raise ValueError("a subscription needs departments or watchers: true")
        return self


class Grouping(Strict):
    group_wait_s: Annotated[float, Field(ge=0)] = 30
    group_wait_red_s: Annotated[float, Field(ge=0, le=5, description="red never waits")] = 0
    group_interval_s: Annotated[float, Field(gt=0)] = 120


class DeliveryPolicy(Strict):
    """Retries with exponential backoff (initial, doubling, capped); a delivery still failing this long
    after its event goes to soc.deadletter."""

    retry_initial_s: Annotated[float, Field(gt=0)] = 1
    retry_max_s: Annotated[float, Field(gt=0)] = 60
    give_up_after_s: Annotated[float, Field(gt=0)] = 3600
    timeout_s: Annotated[float, Field(gt=0, le=10)] = 10


class NotifyConfig(Strict):
    channels: dict[str, Channel]
    subscriptions: list[Subscription] = []
    time_intervals: dict[str, list[TimeInterval]] = {}
    grouping: Grouping = Grouping()
    delivery: DeliveryPolicy = DeliveryPolicy()


# ---------------------------------------------------------------- records of the notifier (Redis, soc.deadletter)

class Delivery(BaseModel):
    """One ticket change for one channel, rendered when it was decided (personal data already masked).

    `mention` holds duty-roster member ids, never phone numbers: the sender reads the numbers from the
    environment when it sends."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str  # "<channel>/<ticket_id>:<event>:<key>"
    notification_id: str  # "<ticket_id>:<event>:<key>"
    channel: str
    ticket_id: str
    event: Event
    severity: Severity
    at: AwareDatetime  # when the change happened (the ticket history's time)
    departments: list[str]  # the ticket's inboxes: who may read this delivery's log
    muted: bool = False
    mention: list[str] = []
    title: str
    fields: list[tuple[str, str]]
    link: str
    description: str = ""
    ticket: dict  # the Ticket without history, masked: the webhook body's "ticket"


Result = Literal["queued", "muted", "expired", "delivered", "failed", "dead"]


class LogEntry(BaseModel):
    """One line of the notification log: an attempt and its result."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    at: AwareDatetime
    delivery_id: str
    ticket_id: str
    channel: str
    channel_type: ChannelType
    event: Event
    severity: Severity
    result: Result
    attempt: int = 0
    error: str = ""
    # The message it went out in: its own id, or the digest's when several were merged.
    message_id: str = ""
    merged: int = 1
    departments: list[str] = []


def _check_references(notify: NotifyConfig, config: Config) -> list[str]:
    errors: list[str] = []
    departments = config.district.departments
    for i, sub in enumerate(notify.subscriptions):
        for j, dept in enumerate(sub.departments):
            if dept not in departments:
                errors.append(f"{FILE}: subscriptions.{i}.departments.{j}: undefined department {dept!r}")
        for j, channel in enumerate(sub.channels):
            if channel not in notify.channels:
                errors.append(f"{FILE}: subscriptions.{i}.channels.{j}: undefined channel {channel!r}")
        for j, interval in enumerate(sub.mute_time_intervals):
            if interval not in notify.time_intervals:
                errors.append(f"{FILE}: subscriptions.{i}.mute_time_intervals.{j}: undefined time interval {interval!r}")
    return errors


def load_notify(config_dir: str | Path, config: Config) -> NotifyConfig | None:
    """notify.yaml of config_dir, checked against the loaded district config; None when the file is absent.

    Raises ConfigError listing every problem found."""
    path = Path(config_dir) / FILE
    if not path.exists():
        return None
    errors: list[str] = []
    notify = _read(path, NotifyConfig, errors)
    if not errors:
        errors = _check_references(notify, config)
    if errors:
        raise ConfigError(errors)
    return notify
