"""verify_webhook on a real delivery from the built server (Standard Webhooks), and refusals of
a tampered, stale or wrongly keyed one."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from conftest import Api, Server

from agent_otp import AgentOTPClient, ValidationError, WebhookVerificationError, verify_webhook

Delivery = Tuple[bytes, Any]


@pytest.fixture()
def receiver() -> Iterator[Tuple[str, List[Delivery]]]:
    arrivals: List[Delivery] = []
    arrived = threading.Condition()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with arrived:
                arrivals.append((body, self.headers))
                arrived.notify_all()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", arrivals
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_verifies_a_real_delivery_and_refuses_forgeries(
    server: Server, operator: Api, receiver: Tuple[str, List[Delivery]], tokens_seen: List[str]
) -> None:
    url, arrivals = receiver
    agent = operator.new_agent("webhooks")
    secret = agent["webhookSecret"]
    otp = AgentOTPClient(agent["apiKey"], server.url)
    permission = otp.request_permission("payment.transfer", scope={"max_amount": 5}, webhook_url=url)
    tokens_seen.append(permission["token"])

    deadline = time.monotonic() + 20
    while not arrivals and time.monotonic() < deadline:
        time.sleep(0.05)
    assert arrivals, "no webhook delivery within 20 s"
    body, headers = arrivals[0]

    event = verify_webhook(body, headers, secret)  # an http.client.HTTPMessage, as http.server gives it
    assert event["type"] == "permission.approved"
    assert event["data"]["id"] == permission["id"] and event["data"]["status"] == "approved"
    assert permission["token"] not in body.decode()  # deliveries carry status, never a token
    as_dict: Dict[str, str] = {k: v for k, v in headers.items()}
    assert verify_webhook(body.decode(), as_dict, secret)["data"]["id"] == permission["id"]

    with pytest.raises(WebhookVerificationError) as tampered:
        verify_webhook(body.replace(b'"approved"', b'"denied"', 1), as_dict, secret)
    assert tampered.value.code == "WEBHOOK_INVALID"
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify_webhook(body, as_dict, secret, now=time.time() + 3600)
    other = operator.new_agent("other")["webhookSecret"]
    with pytest.raises(WebhookVerificationError, match="No webhook-signature"):
        verify_webhook(body, as_dict, other)
    with pytest.raises(WebhookVerificationError, match="Missing"):
        verify_webhook(body, {k: v for k, v in as_dict.items() if k.lower() != "webhook-signature"}, secret)
    with pytest.raises(ValidationError):
        verify_webhook(body, as_dict, "whsec_!!!")
    assert json.loads(body)["data"]["id"] == permission["id"]
