"""An image uploaded to one worker is served by another after the first is killed: the image lives on
soc.evidence, not on the disk or in the memory of the worker that took the upload."""
from __future__ import annotations

import pytest

from tests.integration.test_evidence import OWNER, call, manhole_ticket, upload
from tests.support import Worker, running_pipeline, wait_ready
from tests.unit.test_evidence import phone_jpeg

pytestmark = pytest.mark.integration


def test_the_image_is_served_by_a_second_worker_after_the_first_is_killed(tmp_path):
    with running_pipeline(tmp_path) as stack:
        ticket = manhole_ticket(stack)
        status, body, _ = upload(stack, ticket.ticket_id, OWNER, phone_jpeg(size=(800, 600)), "before")
        assert status == 201, body
        first = stack.worker
        status, image, _ = call(stack, "GET", body["url"], OWNER, worker=first)
        assert status == 200
        process, port = stack.stack.start_worker("worker-2")
        second = Worker(process, port)
        wait_ready(second)
        first.process.kill()
        assert first.process.popen.wait(timeout=10) is not None
        # The second worker never saw the upload: it reads the image back from the topic.
        status, again, headers = call(stack, "GET", body["url"], OWNER, worker=second)
        assert (status, headers["Content-Type"]) == (200, "image/jpeg") and again == image
        status, listing, _ = call(stack, "GET", f"/api/tickets/{ticket.ticket_id}/evidence", OWNER, worker=second)
        assert [i["sha256"] for i in listing["items"]] == [body["sha256"]]
