"""The site whitelist over HTTP (小散工程报备 "一站通"): the construction department and the operations centre
register sites, change their status, permit dates and work hours, and list them; every change is published
on soc.sites, and a call returns once this worker's mirror of it shows the change. /sites is their page."""
from __future__ import annotations

import uuid
from typing import Annotated

from faust import web
from pydantic import AfterValidator, Field

from handlers.permissions import Can
from handlers.privacy import mask_personal, never_masked
from handlers.sites import permit_state, problems
from schemas.enums import OPS_CENTRE
from schemas.raw import Lat, Lon, PermitTime, ShortText, SiteKind, SiteRegistration, SiteStatus, WorkHours
from streams.http.api import ApiError, Body, JsonView, Principal, only_params, validate
from streams.http import pages

REGISTRARS = ("construction_safety", OPS_CENTRE)
PUBLISHED_WAIT_S = 5.0


class SiteSpec(Body):
    site_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] | None = None
    name: Annotated[ShortText, AfterValidator(mask_personal)]  # a contact's number written into a name
    contractor: Annotated[ShortText, AfterValidator(mask_personal)]
    kind: SiteKind
    lat: Lat
    lon: Lon
    radius_m: Annotated[float, Field(gt=0, le=5000, allow_inf_nan=False)]
    permit_from: PermitTime
    permit_until: PermitTime
    work_hours: WorkHours
    status: SiteStatus = SiteStatus.active


class SitePatch(Body):
    status: SiteStatus | None = None
    permit_from: PermitTime | None = None
    permit_until: PermitTime | None = None
    work_hours: WorkHours | None = None


async def _registrar(view: JsonView, request: web.Request) -> Principal:
    who = await view.http.authenticate(request)
    if who.department not in REGISTRARS:
        raise ApiError(403, "only construction_safety and the operations centre manage the site whitelist")
    who.require(Can.register_sites)
    return who


def _checked(view: JsonView, data: dict) -> SiteRegistration:
    """data: fields the body models validated already; the district's checks on top."""
    site = SiteRegistration.model_validate(data)
    found = problems(site, view.http.config)
    if found:
        raise ApiError(422, "invalid body", fields=found)
    return site


def site_json(view: JsonView, site: SiteRegistration) -> dict:
    """A registration as the page reads it: with whether its permit is in force today (the district's day)."""
    state = permit_state(site, view.http.clock(), view.http.config.district.tz)
    return {**site.model_dump(mode="json"), "permit_state": state.value}


async def _publish(view: JsonView, site: SiteRegistration) -> dict:
    pipeline = view.http.pipeline
    await pipeline.topics.sites.send(key=site.site_id.encode(), value=site.model_dump_json().encode())
    await view.http.applied(lambda: pipeline.books.sites.get(site.site_id) == site, within=PUBLISHED_WAIT_S)
    return site_json(view, site)


class SiteList(JsonView):
    async def get(self, request: web.Request) -> web.Response:
        await _registrar(self, request)
        only_params(request.query, {"status"})
        wanted = request.query.get("status")
        if wanted and wanted not in SiteStatus.__members__:
            raise ApiError(400, f"status must be one of {', '.join(SiteStatus.__members__)}")
        sites = sorted(self.http.pipeline.books.sites.values(), key=lambda s: s.site_id)
        return self.json({"sites": [site_json(self, s) for s in sites if not wanted or s.status.value == wanted]})

    async def post(self, request: web.Request) -> web.Response:
        who = await _registrar(self, request)
        spec = validate(SiteSpec, await self.http.read_json(request))
        site_id = spec.site_id or never_masked(f"S{self.http.clock():%Y%m%d}-{uuid.uuid4().hex[:6]}")
        if site_id in self.http.pipeline.books.sites:
            raise ApiError(409, f"site {site_id} is already registered: PATCH /api/sites/{site_id} changes it")
        site = _checked(self, {**spec.model_dump(), "site_id": site_id})
        published = await _publish(self, site)
        self.http.audit(request, "action", "site.register", who, target=site_id)
        return self.json(published, status=201)


class SiteDetail(JsonView):
    def _site(self, site_id: str) -> SiteRegistration:
        site = self.http.pipeline.books.sites.get(site_id) if len(site_id) <= 200 else None
        if site is None:
            raise ApiError(404, f"no site {site_id[:200]}")
        return site

    async def get(self, request: web.Request, site_id: str) -> web.Response:
        await _registrar(self, request)
        return self.json(site_json(self, self._site(site_id)))

    async def patch(self, request: web.Request, site_id: str) -> web.Response:
        who = await _registrar(self, request)
        site = self._site(site_id)
        patch = validate(SitePatch, await self.http.read_json(request)).model_dump(exclude_none=True)
        if not patch:
            raise ApiError(422, "nothing to change: status, permit_from, permit_until or work_hours")
        changed = _checked(self, {**site.model_dump(), **patch})
        published = await _publish(self, changed)
        self.http.audit(request, "action", "site.change", who, target=site_id, detail=", ".join(sorted(patch)))
        return self.json(published)


class SitesPage(web.View):
    async def get(self, request: web.Request):
        return pages.page("sites")


# Before the ticket API's routes, which held GET /api/sites/{site_id} (now here, with PATCH).
ROUTES = [
    ("/sites", "sites-page", SitesPage),
    ("/api/sites", "sites", SiteList),
    ("/api/sites/{site_id}", "site", SiteDetail),
]
