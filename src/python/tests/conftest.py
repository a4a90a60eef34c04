"""Runs the Python SDK's tests against the built server (``dist/``) as a process, on real
Postgres (TEST_DATABASE_URL, in a fresh schema) or PGlite, and real Redis (TEST_REDIS_URL or
127.0.0.1:6379) — the way test/helpers/serverProcess.ts does for the TypeScript SDK."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import quote

import pytest

PY_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PY_ROOT))  # the package under test, not an installed copy

from agent_otp import AgentOTPClient  # noqa: E402

ROOT = PY_ROOT.parents[1]
CLI = ROOT / "dist" / "cli" / "index.js"
CONTRACT = ROOT / "test" / "contract"

POLICIES = {
    "policies": [
        {
            "name": "no-deletes",
            "priority": 20,
            "conditions": {"action": "db.delete"},
            "action": "deny",
            "reason": "Deletes are never allowed",
        },
        {"name": "payments-auto", "priority": 10, "conditions": {"action": {"equals": "payment.*"}}, "action": "auto_approve"},
        {"name": "email-needs-human", "priority": 5, "conditions": {"action": "email.*"}, "action": "require_approval"},
    ]
}

#: Resolution latencies measured by the tests, printed in the terminal summary.
MEASUREMENTS: List[Tuple[str, float]] = []


def record(name: str, seconds: float) -> None:
    MEASUREMENTS.append((name, seconds))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for name, seconds in MEASUREMENTS:
        terminalreporter.write_line(f"agent-otp latency: {name}: {seconds * 1000:.1f} ms")


def _node() -> str:
    node = os.environ.get("NODE_BINARY") or shutil.which("node")
    if not node:
        raise RuntimeError("node is not on PATH")
    return node


def _sql(url: str, statement: str) -> None:
    """One statement on Postgres through the project's own `pg` (Python has no driver here)."""
    script = (
        "const pg=require('pg');const c=new pg.Client({connectionString:process.env.U});"
        "c.connect().then(()=>c.query(process.env.S)).then(()=>c.end(),e=>{console.error(e.message);process.exit(1)})"
    )
    subprocess.run([_node(), "-e", script], cwd=ROOT, env={**os.environ, "U": url, "S": statement}, check=True, timeout=60)


class Server:
    def __init__(self, env: Dict[str, str]) -> None:
        if not CLI.exists():
            raise RuntimeError("dist/ is missing: run `npm run build` (npm test does it)")
        self.admin = "uk_" + secrets.token_hex(24)
        self.data_dir = tempfile.mkdtemp(prefix="aotp-py-")
        self.cwd = tempfile.mkdtemp(prefix="aotp-py-cwd-")  # no .env of the checkout is read
        self.schema: Optional[str] = None
        self.db_url = os.environ.get("TEST_DATABASE_URL")
        full = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", ""),
            "PORT": "0",
            "HOST": "127.0.0.1",
            "LOG_LEVEL": "info",
            "AGENT_OTP_DATA_DIR": self.data_dir,
            "ADMIN_TOKEN": self.admin,
            "REDIS_URL": os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379",
            "REDIS_KEY_PREFIX": "py" + secrets.token_hex(4),
            **env,
        }
        if self.db_url:
            self.schema = "t_py_" + secrets.token_hex(6)
            _sql(self.db_url, f"CREATE SCHEMA {self.schema}")
            sep = "&" if "?" in self.db_url else "?"
            full["DATABASE_URL"] = f"{self.db_url}{sep}options={quote('-c search_path=' + self.schema, safe='')}"
        self._lines: List[str] = []
        self.proc = subprocess.Popen(
            [_node(), str(CLI), "start"],
            env=full,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        listening = threading.Event()
        found: Dict[str, str] = {}

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self._lines.append(line)
                match = re.search(r'"url":"(https?://[^"]+)","msg":"listening"', line)
                if match and not listening.is_set():
                    found["url"] = match.group(1)
                    listening.set()

        threading.Thread(target=pump, daemon=True).start()
        # Generous: a fresh PGlite database takes 5–20 s to create on a busy 2-core machine.
        deadline = time.monotonic() + 90
        while not listening.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("server did not start:\n" + self.output())
        self.url = found["url"]

    def output(self) -> str:
        return "".join(self._lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self.cwd, ignore_errors=True)
        if self.schema and self.db_url:
            _sql(self.db_url, f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")


class Api:
    """The operator (or agent) API with urllib: status and unpacked JSON envelope."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key

    def __call__(self, method: str, path: str, body: Any = None) -> Tuple[int, Dict[str, Any]]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.key}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                return res.status, json.loads(res.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def ok(self, method: str, path: str, body: Any = None) -> Dict[str, Any]:
        status, payload = self(method, path, body)
        assert 200 <= status < 300, (status, payload)
        return payload["data"]

    def decide(self, permission_id: str, **body: Any) -> None:
        self.ok("POST", f"/api/v1/permissions/{permission_id}/decide", body)

    def new_agent(self, name: str) -> Dict[str, Any]:
        return self.ok("POST", "/api/v1/agents", {"name": f"{name}-{secrets.token_hex(3)}"})


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    srv = Server(
        {
            "RATE_LIMIT_PER_MIN": "100000",
            "RATE_LIMIT_PER_HOUR": "1000000",
            "TOKEN_RATE_LIMIT_PER_MIN": "100000",
            "TOKEN_RATE_LIMIT_PER_HOUR": "1000000",
            "AUTH_FAILURES_PER_MIN": "1000",
            # The webhook test's receiver listens on 127.0.0.1.
            "WEBHOOK_ALLOW_PRIVATE": "true",
        }
    )
    try:
        Api(srv.url, srv.admin).ok("PUT", "/api/v1/policies", POLICIES)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def operator(server: Server) -> Api:
    return Api(server.url, server.admin)


@pytest.fixture(scope="session")
def agent(operator: Api) -> Dict[str, Any]:
    """``{id, apiKey, webhookSecret}`` of the agent most tests act as."""
    return operator.new_agent("py-sdk")


@pytest.fixture(scope="session")
def tokens_seen() -> List[str]:
    """Every token the tests were given: none may appear in the server's output."""
    return []


@pytest.fixture()
def otp(server: Server, agent: Dict[str, Any]) -> AgentOTPClient:
    return AgentOTPClient(agent["apiKey"], server.url, retry_delay=0.05)
