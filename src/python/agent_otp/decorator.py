"""``@requires_permission``: guards a tool function (sync or async) with a one-time permission.

Each call requests a permission (waiting for a human if policy says so), verifies the token
against the call's action details, runs the function, and spends the token — the
``execute_with_permission`` flow. If the function raises, the token is not spent. A denial
raises PermissionDeniedError and the function does not run, so an agent framework reports the
refusal to the model like any other tool error.
"""

from __future__ import annotations

import functools
import inspect
import os
from typing import Any, Callable, Dict, Optional, TypeVar, Union, cast

from ._async_client import AsyncAgentOTPClient
from ._client import AgentOTPClient

F = TypeVar("F", bound=Callable[..., Any])
#: A fixed dict, or a function of the tool's own arguments (called like the tool).
PerCall = Union[Dict[str, Any], Callable[..., Optional[Dict[str, Any]]], None]


def requires_permission(
    action: str,
    *,
    scope: PerCall = None,
    resource: Union[str, Callable[..., Optional[str]], None] = None,
    context: PerCall = None,
    action_details: PerCall = None,
    client: Union[AgentOTPClient, AsyncAgentOTPClient, None] = None,
    ttl: Optional[int] = None,
    timeout: Optional[float] = None,
) -> Callable[[F], F]:
    """Wraps a function so each call runs under a fresh permission for ``action``.

    ``scope``, ``resource``, ``context`` and ``action_details`` may be callables taking the
    tool's arguments, e.g. ``action_details=lambda to, amount: {"amount": amount}``, so the scope
    is checked against what this call really does. ``client`` defaults to one built from
    ``AGENT_OTP_API_KEY`` and ``AGENT_OTP_URL`` on first use (an AsyncAgentOTPClient for an
    ``async def``). ``timeout`` bounds the wait for a human, in seconds.
    """

    def decorate(fn: F) -> F:
        is_async = inspect.iscoroutinefunction(fn)
        holder: Dict[str, Any] = {}

        def get_client() -> Any:
            if client is not None:
                if is_async != isinstance(client, AsyncAgentOTPClient):
                    kind = "AsyncAgentOTPClient" if is_async else "AgentOTPClient"
                    raise TypeError(f"@requires_permission on {fn.__name__} needs an {kind}")
                return client
            if "client" not in holder:
                cls = AsyncAgentOTPClient if is_async else AgentOTPClient
                holder["client"] = cls(os.environ.get("AGENT_OTP_API_KEY", ""), os.environ.get("AGENT_OTP_URL"))
            return holder["client"]

        def options(args: Any, kwargs: Any) -> Dict[str, Any]:
            out: Dict[str, Any] = {}
            for name, value in (("scope", scope), ("resource", resource), ("context", context),
                                ("action_details", action_details)):
                resolved = value(*args, **kwargs) if callable(value) else value
                if resolved is not None:
                    out[name] = resolved
            if ttl is not None:
                out["ttl"] = ttl
            if timeout is not None:
                out["timeout"] = timeout
            return out

        if is_async:

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                otp = cast(AsyncAgentOTPClient, get_client())
                return await otp.execute_with_permission(
                    action, lambda _ctx: fn(*args, **kwargs), **options(args, kwargs)
                )

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            otp = cast(AgentOTPClient, get_client())
            return otp.execute_with_permission(action, lambda _ctx: fn(*args, **kwargs), **options(args, kwargs))

        return cast(F, wrapper)

    return decorate
