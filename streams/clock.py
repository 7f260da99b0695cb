"""The only place that reads the wall clock; handlers receive `now` from here."""
from datetime import datetime, timezone


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
