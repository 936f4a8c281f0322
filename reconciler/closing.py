"""``with`` support for objects that hold connections: leaving the block closes them.

The API clients (:class:`~reconciler.client.api.HttpApi`, the Ray Jobs client), the embedded
sandbox and the workspace, which owns a client, a state backend and perhaps an embedded
sandbox, all release what they hold in ``close()``; :class:`Closing` gives each of them the
same ``__enter__`` and ``__exit__`` instead of a copy apiece. It imports nothing of the
package, so the sandbox (which may not import the client) shares it too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Closing(ABC):
    """An object used as ``with obj:`` whose exit calls :meth:`close` (also on an error)."""

    @abstractmethod
    def close(self) -> None:
        """Release what the object holds (connections, locks, a server)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
