"""The tokens this client generated, in this process's memory only (never persisted or logged).

Needed after ``request_permission`` returns: for a request answered ``pending`` without waiting
(``get_permission`` then returns the token once approved), and for a request repeated with the
caller's ``idempotency_key`` (the server answers with the first permission, whose hash is that of
the first token). Entries expire after 24 h (the server's idempotency window) or oldest-first
beyond a fixed count.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Optional, Tuple

_MAX_AGE_S = 24 * 60 * 60
_MAX_ENTRIES = 1000


class _BoundedMap:
    def __init__(self) -> None:
        self._entries: "OrderedDict[str, Tuple[str, float]]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Optional[str]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[1] <= time.monotonic():
                del self._entries[key]
                return None
            return entry[0]

    def set(self, key: str, token: str) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (token, time.monotonic() + _MAX_AGE_S)
            while len(self._entries) > _MAX_ENTRIES:
                self._entries.popitem(last=False)

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)


class TokenVault:
    def __init__(self) -> None:
        self._by_permission = _BoundedMap()
        self._by_key = _BoundedMap()

    def remember_permission(self, permission_id: str, token: str) -> None:
        self._by_permission.set(permission_id, token)

    def token_for(self, permission_id: str) -> Optional[str]:
        return self._by_permission.get(permission_id)

    def forget(self, permission_id: str) -> None:
        self._by_permission.delete(permission_id)

    def remember_key(self, key: str, token: str) -> None:
        self._by_key.set(key, token)

    def token_for_key(self, key: str) -> Optional[str]:
        return self._by_key.get(key)
