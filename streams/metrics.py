"""The soc_* metrics (docs/metrics.md), built on a registry passed in (tests use a fresh one)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from handlers.sign_in import Throttle

NOTIFY_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


SOURCES = ("traffic", "flood", "city", "construction")
SLA_STAGES = ("accept", "resolve")
ESCALATION_STEPS = ("reminded", "escalated", "reported")
SIGN_IN_RESULTS = ("ok", "wrong", "disabled", "throttled")
CHANNEL_TYPES = ("dingtalk", "wecom", "feishu", "webhook", "email", "sms")


class Metrics:
    def __init__(self, registry: CollectorRegistry, departments: tuple[str, ...] = ()):
        self.registry = registry
        self.events = Counter("soc_events", "Raw events consumed", ["source"], registry=registry)
        self.rejected = Counter("soc_events_rejected", "Raw events sent to the dead-letter topic",
                                ["source", "reason"], registry=registry)
        self.incidents = Counter("soc_incidents", "Incidents classified",
                                 ["source", "category", "severity"], registry=registry)
        self.incidents_silenced = Counter("soc_incidents_silenced", "Incidents a silence kept from opening a ticket",
                                          ["source"], registry=registry)
        self.response_level = Gauge("soc_response_level", "Emergency-response level in force: 1 (I, red) to 4 (IV, blue), 0 = none",
                                    registry=registry)
        self.duplicates = Counter("soc_duplicates", "Incidents merged into an open ticket",
                                  ["source"], registry=registry)
        self.tickets_opened = Counter("soc_tickets_opened", "Tickets opened",
                                      ["department", "severity"], registry=registry)
        self.tickets_open = Gauge("soc_tickets_open", "Tickets not yet closed",
                                  ["department", "severity"], registry=registry)
        self.sla_breaches = Counter("soc_sla_breaches", "Deadlines missed",
                                    ["department", "stage"], registry=registry)
        self.escalations = Counter("soc_escalations", "Escalation ladder steps taken",
                                   ["department", "step"], registry=registry)
        self.on_time_ratio = Gauge("soc_department_on_time_ratio", "Resolved on time / due",
                                   ["department"], registry=registry)
        self.devices_silent = Gauge("soc_devices_silent", "Devices past their heartbeat (rules.yaml heartbeats)",
                                    ["source"], registry=registry)
        # Every rate of /api/performance (按时签收率, 按期办结率, 回访率, 满意率, 发回重办率, ...), last 30 days.
        self.department_ratio = Gauge("soc_department_ratio", "A department's rate, as /api/performance gives it",
                                      ["department", "rate"], registry=registry)
        self.latency = Histogram("soc_pipeline_latency_seconds", "Received -> ticket written to Redis",
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.consumer_lag = Gauge("soc_consumer_lag", "Messages behind the log end",
                                  ["topic", "partition"], registry=registry)
        self.partition_stalls = Counter("soc_partition_stalls", "Partitions sought back after records stopped arriving",
                                        ["topic"], registry=registry)
        self.timer_errors = Counter("soc_timer_errors", "Timer ticks that failed (tried again next tick)",
                                    ["timer"], registry=registry)
        self.notifications = Counter("soc_notifications", "Notification deliveries by result (queued, muted, "
                                     "delivered, failed attempt, dead-lettered)",
                                     ["channel_type", "event", "result"], registry=registry)
        self.notification_latency = Histogram("soc_notification_latency_seconds",
                                              "Ticket change -> the vendor accepted its message",
                                              ["channel_type"], buckets=NOTIFY_BUCKETS, registry=registry)
        self.notifications_pending = Gauge("soc_notifications_pending", "Deliveries queued and not yet sent",
                                           ["channel"], registry=registry)
        self.sign_ins = Counter("soc_sign_ins", "Sign-ins by result (ok, wrong, disabled, throttled)",
                                ["result"], registry=registry)
        self.sign_in_throttled = Counter(
            "soc_sign_in_throttled", "Sign-ins and credentials refused unchecked, by reason (address: its budget "
            "spent; account_address: that address failed on that account; account: the account's ceiling)",
            ["reason"], registry=registry)
        # Series exist from start-up at 0, so the first increment shows in rate() and a silent
        # source is visible as a flat line rather than as no data.
        for source in SOURCES:
            self.events.labels(source)
            self.duplicates.labels(source)
            self.incidents_silenced.labels(source)
        # The failing-channel alert reads these: every channel type has its series from start-up.
        for channel_type in CHANNEL_TYPES:
            for result in ("delivered", "failed", "dead"):
                self.notifications.labels(channel_type, "dispatched", result)
        for result in SIGN_IN_RESULTS:
            self.sign_ins.labels(result)
        for reason in Throttle:
            self.sign_in_throttled.labels(reason.value)
        for department in departments:
            for stage in SLA_STAGES:
                self.sla_breaches.labels(department, stage)
            for step in ESCALATION_STEPS:
                self.escalations.labels(department, step)
