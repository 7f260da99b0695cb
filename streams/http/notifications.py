"""The notification log over HTTP: every attempt and result, for the centre all of them, for a
department those of its own tickets (the inboxes a ticket was in when its change was notified)."""
from __future__ import annotations

from datetime import timedelta

from faust import web

from handlers.permissions import Can
from streams.http.api import ApiError, JsonView, entry_json, only_params, page_param, time_param

DEFAULT_SINCE = timedelta(hours=24)
MAX_ENTRIES = 1000  # the newest ones since `since`, oldest first
PARAMS = {"ticket_id", "since", "limit"}


class Notifications(JsonView):
    async def get(self, request: web.Request) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.read_tickets)
        query = request.query
        only_params(query, PARAMS)
        store = self.http.notifications
        if store is None:
            raise ApiError(404, "notifications are not configured (no notify.yaml, or no channel URL set)")
        since = time_param(query, "since") or self.http.clock() - DEFAULT_SINCE
        limit = page_param(query, "limit", 200, MAX_ENTRIES)
        self.http.charge_rows(who, limit)
        if query.get("ticket_id"):
            ticket = await self.http.visible_ticket(query["ticket_id"], who)
            entries = [e for e in await store.ticket_entries(ticket.ticket_id) if e.at >= since]
            entries = entries[len(entries) - limit:] if limit else []
        else:
            entries = await store.latest(since, limit, None if who.reads_all else who.department)
        return self.json({"since": since.isoformat(), "entries": [entry_json(e) for e in entries]})


ROUTES = [("/api/notifications", "notifications", Notifications)]
