"""Photo evidence on the real stack: uploaded through the API, stored on soc.evidence, served back to those who
may see the ticket, and routing.yaml's rule that a manhole ticket is resolved only with a photo after the work.
The stack runs deploy/config as shipped, which lists manhole covers among the categories needing one."""
from __future__ import annotations

import io
import json
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from PIL import Image

from handlers import evidence
from schemas.records import Ticket
from streams import topics
from streams.ops.devstack import soc_command
from tests.integration.payloads import Builder
from tests.support import Pipeline, Worker, marker, poll, running_pipeline
from tests.unit.test_evidence import MAKE, SERIAL, phone_jpeg

pytestmark = pytest.mark.integration

OWNER = "city_management"  # city_manhole and city_road_damage route here
OTHER = "traffic_police"


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Pipeline]:
    with running_pipeline(tmp_path_factory.mktemp("evidence-stack")) as running:
        yield running


def form(fields: dict[str, str], image: bytes | None, filename: str = "photo.jpg") -> tuple[bytes, str]:
    """A multipart/form-data body as a phone's browser sends it, and its Content-Type."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    if image is not None:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
                     f"Content-Type: image/jpeg\r\n\r\n".encode() + image + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def upload(pipeline: Pipeline, ticket_id: str, department: str, image: bytes | None, stage: str = "before",
           note: str = "", worker: Worker | None = None) -> tuple[int, dict]:
    body, content_type = form({"stage": stage, **({"note": note} if note else {})}, image)
    return call(pipeline, "POST", f"/api/tickets/{ticket_id}/evidence", department, body,
                {"Content-Type": content_type}, worker)


def call(pipeline: Pipeline, method: str, path: str, department: str, body: bytes | None = None,
         headers: dict | None = None, worker: Worker | None = None) -> tuple[int, dict | bytes, dict]:
    """(status, JSON body or the bytes of an image, headers)."""
    request = urllib.request.Request((worker or pipeline.worker).url + path, data=body, method=method,
                                     headers={"Authorization": f"Bearer {pipeline.tokens[department]}",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            payload, status, answer = response.read(), response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        payload, status, answer = error.read(), error.code, dict(error.headers)
    if answer.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(payload), answer
    return status, payload, answer


def manhole_ticket(pipeline: Pipeline, accepted: bool = True) -> Ticket:
    build = Builder(pipeline.config, marker())
    report = build.city("liyuan", category="manhole_cover_missing", description="井盖缺失")
    pipeline.send("soc.raw.city", report)
    [ticket] = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref == report["case_no"]), 60, "the ticket")
    assert ticket.department == OWNER
    if accepted:
        status, body = pipeline.post(f"/api/tickets/{ticket.ticket_id}/accept", OWNER, {})
        assert status == 200, body
    return ticket


def test_an_upload_is_listed_on_its_ticket_and_served_without_its_exif(stack):
    ticket = manhole_ticket(stack)
    status, body, _ = upload(stack, ticket.ticket_id, OWNER, phone_jpeg(), "before", note="现场联系人13912345678")
    assert status == 201, body
    sha = body["sha256"]
    assert (body["lat"], body["lon"]) == (22.51, 113.905)
    status, listing, _ = call(stack, "GET", f"/api/tickets/{ticket.ticket_id}/evidence", OWNER)
    assert status == 200, listing
    [item] = listing["items"]
    assert (item["sha256"], item["stage"], item["lat"], item["note"]) == (sha, "before", 22.51, "现场联系人139****5678")
    assert "上传处置前照片" in item["text"] and "13912345678" not in json.dumps(listing)
    status, image, headers = call(stack, "GET", item["url"], OWNER)
    assert status == 200 and headers["Content-Type"] == "image/jpeg", image
    served = Image.open(io.BytesIO(image))
    assert served.size == (640, 480) and dict(served.getexif()) == {}
    assert SERIAL.encode() not in image and MAKE.encode() not in image
    status, thumbnail, headers = call(stack, "GET", item["thumbnail_url"], OWNER)
    assert status == 200 and max(Image.open(io.BytesIO(thumbnail)).size) == evidence.THUMB_SIDE
    # The centre sees every ticket, so it sees the image too.
    assert call(stack, "GET", item["url"], "ops_centre")[0] == 200
    # The ticket's history names the upload, once.
    history = poll(lambda: stack.ticket(ticket.ticket_id), 10, "the ticket").history
    assert [h.photo.sha256 for h in history if h.photo] == [sha]


def test_the_same_picture_is_stored_once_and_shown_on_each_ticket_it_was_uploaded_on(stack):
    first, second = manhole_ticket(stack), manhole_ticket(stack)
    picture = phone_jpeg(size=(320, 240))
    before = len(stack.read_topic(topics.EVIDENCE))
    shas = [upload(stack, t.ticket_id, OWNER, picture, "other")[1]["sha256"] for t in (first, second)]
    assert shas[0] == shas[1]
    assert len(stack.read_topic(topics.EVIDENCE)) == before + 1
    for ticket in (first, second):
        assert [i["sha256"] for i in call(stack, "GET", f"/api/tickets/{ticket.ticket_id}/evidence", OWNER)[1]["items"]] \
            == shas[:1]


def test_another_departments_user_gets_404_for_the_ticket_and_the_image(stack):
    ticket = manhole_ticket(stack)
    status, body, _ = upload(stack, ticket.ticket_id, OWNER, phone_jpeg(size=(300, 200)), "before")
    assert status == 201, body
    for method, path in (("GET", body["url"]), ("GET", body["thumbnail_url"]),
                         ("GET", f"/api/tickets/{ticket.ticket_id}/evidence")):
        status, answer, _ = call(stack, method, path, OTHER)
        assert status == 404 and "error" in answer, (path, answer)
    status, answer, _ = upload(stack, ticket.ticket_id, OTHER, phone_jpeg(), "before")
    assert status == 404 and "error" in answer
    # An image nobody uploaded reads the same as one of another department's.
    assert call(stack, "GET", "/api/evidence/" + "0" * 64, OWNER)[:2] == (404, {"error": "no image " + "0" * 64})


def test_a_bomb_a_non_image_and_a_bad_form_are_refused_with_json(stack):
    ticket = manhole_ticket(stack)
    bomb = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(bomb, "PNG")
    status, body, _ = upload(stack, ticket.ticket_id, OWNER, bomb.getvalue())
    assert (status, body["problem"]) == (422, "too_many_pixels"), body
    status, body, _ = upload(stack, ticket.ticket_id, OWNER, b"%PDF-1.7 not a photo")
    assert (status, body["problem"]) == (422, "not_an_image"), body
    status, body, _ = upload(stack, ticket.ticket_id, OWNER, phone_jpeg(), stage="during")
    assert status == 422 and body["error"] == "stage must be one of before, after, other"
    status, body, _ = upload(stack, ticket.ticket_id, OWNER, None)
    assert (status, body["error"]) == (400, "the form needs an 'image' file")
    status, body, _ = call(stack, "POST", f"/api/tickets/{ticket.ticket_id}/evidence", OWNER, b'{"stage":"after"}',
                           {"Content-Type": "application/json"})
    assert status == 415 and "multipart" in body["error"]
    status, body, _ = upload(stack, ticket.ticket_id, OWNER, b"\xff\xd8" + b"\0" * (evidence.MAX_UPLOAD_BYTES + 1))
    assert status == 413 and "10 MB" in body["error"]
    # Nothing refused reached the ticket.
    assert not [h for h in stack.ticket(ticket.ticket_id).history if h.photo]


def test_a_manhole_ticket_is_resolved_only_with_a_photo_after_the_work(stack):
    ticket = manhole_ticket(stack)
    resolve = f"/api/tickets/{ticket.ticket_id}/resolve"
    status, body = stack.post(resolve, OWNER, {"resolution": "已更换井盖"})
    assert status == 409 and body["error"].startswith("此类工单须先上传处置后照片才能办结"), body
    assert upload(stack, ticket.ticket_id, OWNER, phone_jpeg(size=(200, 150)), "before")[0] == 201
    assert stack.post(resolve, OWNER, {"resolution": "已更换井盖"})[0] == 409
    assert upload(stack, ticket.ticket_id, OWNER, phone_jpeg(size=(210, 150)), "after", note="新井盖")[0] == 201
    status, body = stack.post(resolve, OWNER, {"resolution": "已更换井盖"})
    assert (status, body["status"]) == (200, "resolved"), body


def test_soc_rebuild_restores_the_index_from_soc_evidence_and_the_tickets(stack):
    ticket = manhole_ticket(stack)
    status, body, _ = upload(stack, ticket.ticket_id, OWNER, phone_jpeg(size=(400, 300)), "other")
    assert status == 201, body
    done = subprocess.run([*soc_command(), "rebuild"], env=stack.stack.env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # Everything under the prefix was thrown away and written again: the thumbnail comes from the topic now.
    assert not stack.redis.exists(stack.key(f"evidence-thumb:{body['sha256']}"))
    status, image, _ = call(stack, "GET", body["thumbnail_url"], OWNER)
    assert status == 200 and Image.open(io.BytesIO(image)).format == "JPEG", image
    assert call(stack, "GET", body["url"], OTHER)[0] == 404  # who may see it came back with it


@pytest.mark.parametrize("body, content_type", [
    (b"--x\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc", "multipart/form-data; boundary=x"),
    (b"not a form at all", "multipart/form-data; boundary=x"),
    (b"--x--\r\n", "multipart/form-data"),
    (b"--x\r\nContent-Disposition: form-data\r\n\r\nabc\r\n--x--\r\n", "multipart/form-data; boundary=x"),
    (b"--x\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nabc\r\n--x--\r\n", "multipart/form-data; boundary=x"),
    (b"--x\r\nContent-Type: multipart/mixed; boundary=y\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n"
     b"--y\r\n\r\nabc\r\n--y--\r\n--x--\r\n", "multipart/form-data; boundary=x"),
])
def test_a_broken_form_is_a_4xx_with_json_never_a_500(stack, body, content_type):
    ticket = manhole_ticket(stack, accepted=False)
    status, answer, _ = call(stack, "POST", f"/api/tickets/{ticket.ticket_id}/evidence", OWNER, body,
                             {"Content-Type": content_type})
    assert 400 <= status < 500 and isinstance(answer, dict) and answer["error"], (status, answer)


def test_a_signed_in_clerk_uploads_with_the_session_and_its_csrf_token(stack):
    ticket = manhole_ticket(stack)
    clerk = stack.add_user(f"clerk.{marker()}", OWNER, "clerk", name="王城管")
    session = stack.sign_in(clerk)
    body, content_type = form({"stage": "after"}, phone_jpeg(size=(330, 220)))
    path = f"/api/tickets/{ticket.ticket_id}/evidence"
    status, answer, _ = stack.raw_request("POST", path, body, {"Cookie": session["Cookie"], "Content-Type": content_type})
    assert status == 403 and "X-CSRF-Token" in answer["error"]
    status, answer, _ = stack.raw_request("POST", path, body, {**session, "Content-Type": content_type})
    assert status == 201, answer
    [entry] = [h for h in stack.ticket(ticket.ticket_id).history if h.photo]
    assert (entry.user.user_id, entry.photo.stage.value) == (clerk, "after")
