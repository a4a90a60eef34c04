"""Runs last (files run in name order): the server never saw a token, so none is in its logs."""

from __future__ import annotations

import re
from typing import List

from conftest import Server


def test_no_token_reached_the_server_logs(server: Server, tokens_seen: List[str]) -> None:
    assert len(tokens_seen) > 10
    logs = server.output()
    for token in tokens_seen:
        assert token not in logs
    assert not re.search(r"otp_v1_[A-Za-z0-9_-]{20,}", logs)
