"""The worker's web side: pages, the ticket API, health and metrics. Every view reads Redis and
sends commands through the pipeline it is registered with; nothing here imports the app."""
from __future__ import annotations

from streams.http import accounts, api, board, cap, chat, duty, evidence, geo, joint, notifications, open311, plans, resources, response, reviews, silences, sites, stats, web
from streams.http.api import Http


def register(pipeline) -> None:
    http = Http(pipeline)
    geo.layers_json(http)  # map.geojson checked at start: a bad file stops the worker with its errors
    routes = [*accounts.ROUTES, *chat.ROUTES, *geo.ROUTES, *stats.ROUTES, *reviews.ROUTES, *cap.ROUTES, *sites.ROUTES, *plans.ROUTES, *resources.ROUTES, *evidence.ROUTES, *joint.ROUTES, *api.ROUTES, *duty.ROUTES, *notifications.ROUTES, *silences.ROUTES, *response.ROUTES, *open311.ROUTES, *board.ROUTES, *web.ROUTES]
    if not pipeline.settings.faust_sensors:
        routes.append(web.METRICS_ROUTE)
    for path, name, view in routes:
        pipeline.app.page(path, name=name)(type(view.__name__, (view,), {"http": http}))
    pipeline.app.web.web_app.middlewares.append(board.json_errors(http.config))
