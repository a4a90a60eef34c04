"""The asyncio transport, on ``asyncio`` streams (TLS through ``ssl``), not on a thread pool.

Why streams rather than ``asyncio.to_thread(http.client…)``: a waiting agent holds a long-poll
open for up to 30 s, and many may wait at once; threads would cap that at the executor's size,
and cancelling the task (``asyncio.wait_for``, a shutting-down app) could not stop a thread
blocked in ``recv``. On streams a cancelled task closes its socket at once. Each attempt opens a
connection and sends ``Connection: close``, so the answer is simply read to EOF.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

from ._http import Call, Config, Prepared, interpret, prepare, should_retry, split_status, transport_error
from .errors import AgentOTPError

#: An answer larger than this is refused (the API's answers are a few kB).
_MAX_ANSWER = 16 * 1024 * 1024


class AsyncTransport:
    def __init__(self, config: Config) -> None:
        self.config = config

    async def call(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                return await self._attempt(call)
            except AgentOTPError as err:
                delay = should_retry(self.config, call, attempt, err)
                if delay is None:
                    raise
                await asyncio.sleep(delay)
                attempt += 1

    async def _attempt(self, call: Call) -> Any:
        p = prepare(self.config, call)
        try:
            raw = await asyncio.wait_for(self._exchange(p), p.timeout)
            status, headers, body = split_status(raw)
        except asyncio.TimeoutError:
            raise transport_error(call, socket.timeout(), p.timeout) from None
        except (OSError, ValueError, EOFError) as exc:
            raise transport_error(call, exc, p.timeout) from None
        except Exception as exc:  # http.client.HTTPException from split_status
            if isinstance(exc, AgentOTPError):
                raise
            raise transport_error(call, exc, p.timeout) from None
        return interpret(call, status, headers, body)

    async def _exchange(self, p: Prepared) -> bytes:
        context = None
        if p.scheme == "https":
            context = self.config.ssl_context or ssl.create_default_context()
        reader, writer = await asyncio.open_connection(
            p.host, p.port, ssl=context, server_hostname=p.host if context else None
        )
        try:
            host = p.host if ":" not in p.host else f"[{p.host}]"
            default_port = 443 if p.scheme == "https" else 80
            lines = [
                f"{p.method} {p.target} HTTP/1.1",
                f"Host: {host}" + ("" if p.port == default_port else f":{p.port}"),
                "Connection: close",
            ] + [f"{k}: {v}" for k, v in p.headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (p.body or b""))
            await writer.drain()
            chunks = []
            size = 0
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > _MAX_ANSWER:
                    raise ValueError("answer too large")
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 1)
            except Exception:  # noqa: BLE001 - closing is best-effort
                pass
