"""One ``with`` shape for everything that owns a connection, a thread or a stack of those.

The clients, the runtime and the topic stream all close the same way on leaving a ``with`` block,
whatever ended it; defining that once keeps the five of them from drifting apart (one swallowing
exceptions, one forgetting to return ``self``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

__all__ = ["Closing"]


class Closing:
    """Mixin: ``with obj:`` returns ``obj`` and calls ``obj.close()`` at the end.

    Subclasses implement :meth:`close` (idempotent: ``with`` may follow an explicit close). The
    exception that ended the block, if any, propagates.
    """

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
