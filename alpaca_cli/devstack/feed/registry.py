"""Who holds a connection slot: the per-key connection limit behind error 406.

Shared by every session of one server and touched only from its event loop, so it needs no lock.
"""

from __future__ import annotations

__all__ = ["KeyRegistry"]


class KeyRegistry:
    """Counts authenticated connections per API key id.

    A session calls :meth:`acquire` when its credentials check out and :meth:`release` when the
    connection ends, however it ends; a refused acquire is the 406 of the spec ("the key already
    has its one connection on this endpoint").

    Parameters:
        limit: connections one key may hold at a time (Alpaca: 1).
    """

    def __init__(self, limit: int = 1) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._holders: dict[str, set[int]] = {}

    def acquire(self, key: str, conn_id: int) -> bool:
        """Take a slot for ``conn_id``; False when ``key`` already holds ``limit`` of them."""
        holders = self._holders.setdefault(key, set())
        if conn_id in holders:
            return True
        if len(holders) >= self.limit:
            return False
        holders.add(conn_id)
        return True

    def release(self, key: str, conn_id: int) -> None:
        """Give the slot back; releasing a slot that is not held does nothing."""
        holders = self._holders.get(key)
        if holders is None:
            return
        holders.discard(conn_id)
        if not holders:
            del self._holders[key]

    def held(self, key: str) -> int:
        """How many connections ``key`` holds now."""
        return len(self._holders.get(key, ()))
