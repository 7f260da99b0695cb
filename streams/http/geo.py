"""The district's offline map layers (deploy/config/map.geojson, schemas/geo.py) for the board's map.

Loaded and checked when the views are registered, so a bad file stops the worker at start with the
exact errors (`soc check-config` reports the same)."""
from __future__ import annotations

from faust import web

from schemas.geo import load_map
from streams.http.api import JsonView, only_params


def layers_json(http) -> dict:
    layers = getattr(http, "_map_layers", None)
    if layers is None:
        loaded = load_map(http.settings.config_dir, http.config)
        layers = loaded.model_dump(mode="json", exclude_none=True) if loaded else {"type": "FeatureCollection", "features": []}
        http._map_layers = layers
    return layers


class MapLayers(JsonView):
    async def get(self, request: web.Request) -> web.Response:
        await self.http.authenticate(request)
        only_params(request.query, set())
        return self.json(layers_json(self.http))


ROUTES = [("/api/map", "map", MapLayers)]
