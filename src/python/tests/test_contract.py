"""The wire contract shared with the TypeScript SDK (test/contract/*.json, read by
test/sdk/contract.test.ts too): the same requests on the wire, the same error class for each
answer, the same webhook verdicts, the same token commitment. A local HTTP server plays the API."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Tuple
from urllib.parse import parse_qsl, urlsplit

import agent_otp
import pytest
from conftest import CONTRACT

from agent_otp import TOKEN_PATTERN, AgentOTPClient, generate_token, hash_token, verify_webhook


def load(name: str) -> Dict[str, Any]:
    return json.loads((CONTRACT / name).read_text(encoding="utf-8"))


ERRORS = load("errors.json")
REQUESTS = load("requests.json")
WEBHOOKS = load("webhooks.json")
TOKENS = load("tokens.json")


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def matches(expected: Any, actual: Any) -> bool:
    """Deep equality, where an expected ``re:…`` string is a pattern."""
    if isinstance(expected, str) and expected.startswith("re:"):
        return isinstance(actual, str) and re.search(expected[3:], actual) is not None
    if isinstance(expected, dict):
        return isinstance(actual, dict) and expected.keys() == actual.keys() and all(
            matches(v, actual[k]) for k, v in expected.items()
        )
    return expected == actual and type(expected) is type(actual)


class FakeApi:
    """Answers each request with the next scripted reply and records what was sent."""

    def __init__(self) -> None:
        self.replies: List[Tuple[int, Dict[str, str], bytes]] = []
        self.requests: List[Dict[str, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                api.requests.append(
                    {
                        "method": self.command,
                        "path": parts.path,
                        "query": dict(parse_qsl(parts.query)),
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": json.loads(raw) if raw else None,
                    }
                )
                status, headers, body = api.replies.pop(0)
                self.send_response(status)
                for k, v in {"content-type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _serve  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def reply(self, status: int, body: Any = None, raw: str = None, headers: Dict[str, str] = None) -> None:
        data = raw.encode() if raw is not None else json.dumps(body).encode()
        self.replies.append((status, headers or {}, data))


@pytest.fixture(scope="module")
def fake_api() -> Iterator[FakeApi]:
    fake = FakeApi()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


@pytest.fixture()
def api(fake_api: FakeApi) -> FakeApi:
    fake_api.requests.clear()
    fake_api.replies.clear()
    return fake_api


@pytest.mark.parametrize("case", ERRORS["cases"], ids=[c["name"] for c in ERRORS["cases"]])
def test_error_answers_become_the_same_classes(api: FakeApi, case: Dict[str, Any]) -> None:
    api.reply(case["status"], case.get("body"), case.get("rawBody"), case.get("headers"))
    client = AgentOTPClient("ak_test_contract", api.url, retry_attempts=0)
    with pytest.raises(agent_otp.AgentOTPError) as caught:
        client.use_token(ERRORS["permissionId"], generate_token())
    err, expect = caught.value, case["expect"]
    assert type(err).__name__ == expect["class"]
    if "notClass" in expect:
        assert not isinstance(err, getattr(agent_otp, expect["notClass"]))
    assert err.code == expect["code"] and err.status == expect["status"]
    assert err.permission_id == ERRORS["permissionId"]
    for field in ("requestId", "retryAfter", "key", "violations"):
        if field in expect:
            assert getattr(err, snake(field)) == expect[field], field
    if "messageContains" in expect:
        assert expect["messageContains"] in err.message
    for fragment in expect.get("messageExcludes", []):
        assert fragment not in str(err)


@pytest.mark.parametrize("case", REQUESTS["cases"], ids=[c["name"] for c in REQUESTS["cases"]])
def test_calls_put_the_same_request_on_the_wire(api: FakeApi, case: Dict[str, Any]) -> None:
    api.reply(case["reply"]["status"], case["reply"]["body"])
    client = AgentOTPClient(REQUESTS["apiKey"], api.url, retry_attempts=0)
    options = {snake(k): v for k, v in case.get("options", {}).items()}
    call = case["call"]
    if call == "requestPermission":
        result = client.request_permission(options.pop("action"), **options)
    elif call in ("verifyToken", "useToken"):
        result = getattr(client, snake(call))(case["id"], case["token"], **options)
    else:
        result = getattr(client, snake(call))(case["id"], **options)

    [sent] = api.requests
    expect = case["expectRequest"]
    assert sent["method"] == expect["method"] and sent["path"] == expect["path"]
    assert sent["query"] == expect.get("query", {})
    headers = dict(REQUESTS["headers"], **(REQUESTS["postHeaders"] if expect["method"] == "POST" else {}))
    for name, value in headers.items():
        assert matches(value, sent["headers"].get(name)), name
    if expect["method"] == "POST":
        assert matches(expect["body"], sent["body"]), sent["body"]
    assert matches(case["expectResult"], dict(result)), result
    if case.get("tokenCommitment"):
        # The server got only the SHA-256 of the token the caller holds.
        assert hashlib.sha256(result["token"].encode()).hexdigest() == sent["body"]["tokenHash"]


@pytest.mark.parametrize("case", WEBHOOKS["cases"], ids=[c["name"] for c in WEBHOOKS["cases"]])
def test_webhook_verdicts(case: Dict[str, Any]) -> None:
    secret = case.get("secret", WEBHOOKS["secret"])
    if case["valid"]:
        assert verify_webhook(case["body"], case["headers"], secret, now=case["now"]) == WEBHOOKS["payloadOfValid"]
        return
    with pytest.raises(getattr(agent_otp, case["error"])) as caught:
        verify_webhook(case["body"].encode(), case["headers"], secret, now=case["now"])
    if "messageContains" in case:
        assert case["messageContains"] in caught.value.message


def test_token_format_and_commitment() -> None:
    assert TOKEN_PATTERN.pattern == TOKENS["pattern"]
    for vector in TOKENS["vectors"]:
        assert hash_token(vector["token"]) == vector["tokenHash"]
    tokens = {generate_token() for _ in range(50)}
    assert len(tokens) == 50 and all(re.match(TOKENS["pattern"], t) for t in tokens)
