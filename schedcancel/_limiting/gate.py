"""Gate: withdraw a group of calls that are still waiting for the limiter.

A bulk job told to stop (or failing for good) must send nothing new, yet let
the requests already on the wire finish. A bot whose user gave up waiting
wants the same for one call. The gate tells the two apart from outside the
limiter: a call passes it while it waits for its permit, and
[`Gate.close()`][schedcancel.Gate.close] withdraws exactly those calls, whatever limiter (in
process, Redis, your own) they wait in. A withdrawn call raises
[`RequestWithdrawnError`][schedcancel.RequestWithdrawnError] and uses no budget; the limiter sees an
ordinary cancellation, so a permit granted in the same instant is given back.

Every ``ScheduleClient`` holds a gate of its own (raising
[`ClientClosedError`][schedcancel.ClientClosedError]) that its ``aclose()`` closes; a call
given a gate of the caller's passes both.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import ClassVar

from .._protocol.models import Limiter, Permit
from ..errors import RequestWithdrawnError

__all__ = ["Gate"]


class Gate:
    """Lets its owner withdraw, at once, every call of a group still waiting for a permit.

    Pass the same gate to every call of the group
    (``client.cancel(id, gate=gate)``; ``cancel_many`` makes one per job) and
    call `close()` to withdraw them. Calls already sent are not touched;
    calls that reach the gate later are refused at once, retries included.
    A client call also waits for its retry's backoff inside the gate, so a
    call backing off is withdrawn at once too. Each ``ScheduleClient`` holds a
    gate of its own for all its calls, which ``aclose()`` closes: a call
    passes both, and whichever closes first withdraws it.
    """

    __slots__ = ("_before_send", "_closed", "_on_grant", "_waiting", "_withdrawing")

    #: What a withdrawn call raises, and what closed it (in the message).
    _error: ClassVar[type[RequestWithdrawnError]] = RequestWithdrawnError
    _what: ClassVar[str] = "the gate"

    def __init__(
        self,
        on_grant: Callable[[Permit], object] | None = None,
        *,
        before_send: Callable[[Permit], Awaitable[object]] | None = None,
    ) -> None:
        """Make an open gate.

        Args:
            on_grant: called with each permit a call of the group gets, before it
                sends (a bulk job journals the send); it must not raise.
            before_send: awaited with each permit after ``on_grant``, and the call
                sends only once it returns (a bulk start makes its intent durable
                first); if it raises, the call is not sent and raises that.
        """
        self._on_grant = on_grant
        self._before_send = before_send
        self._closed = False
        self._waiting: set[asyncio.Task[object]] = set()
        self._withdrawing: set[asyncio.Task[object]] = set()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} closed={self._closed} waiting={len(self._waiting)}>"

    @property
    def closed(self) -> bool:
        """True once `close()` was called."""
        return self._closed

    @property
    def waiting(self) -> int:
        """Calls of the group waiting for a permit now."""
        return len(self._waiting)

    def close(self) -> None:
        """Withdraw every call waiting for a permit, and refuse the ones that come later."""
        self._closed = True
        if not self._waiting:
            return
        closer = asyncio.current_task()  # the task closing the gate is not waiting in it
        for task in self._waiting:
            if task not in self._withdrawing and task is not closer:
                self._withdrawing.add(task)
                task.cancel()

    async def acquire(
        self,
        limiter: Limiter,
        schedule_id: str | None,
        *,
        priority: int = 0,
        queue_timeout: float | None = None,
        requeue: bool = False,
    ) -> Permit:
        """``limiter.acquire(...)``, unless the gate is closed before the permit comes.

        Raises:
            RequestWithdrawnError: the gate is (or got) closed; nothing was sent
                and no budget was used.
        """
        with self.watching():
            permit = await limiter.acquire(
                schedule_id, priority=priority, queue_timeout=queue_timeout, requeue=requeue
            )
        self.granted(permit)
        try:
            await self.ready(permit)
        except BaseException:
            await asyncio.shield(limiter.release(permit))
            raise
        return permit

    def granted(self, permit: Permit) -> None:
        """Tell the gate that a call of its group got ``permit`` and is about to send.

        `acquire()` does this itself; a caller that waits in
        [`watching()`][schedcancel.Gate.watching] (as ``ScheduleClient`` does) calls it once the
        permit is in hand.
        """
        if self._on_grant is not None:
            self._on_grant(permit)

    async def ready(self, permit: Permit) -> None:
        """Await the group's ``before_send`` for a call that got ``permit``; then it may send.

        `acquire()` does this itself, after `granted()`; a caller that waits in
        [`watching()`][schedcancel.Gate.watching] awaits it once the permit is in hand, and
        releases the permit without sending when it raises.
        """
        if self._before_send is not None:
            await self._before_send(permit)

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """A block of waiting that closing the gate ends, for the task that runs it.

        `acquire()` waits for its permit in one; a client call also waits
        for its retry's backoff in one. The block must be a wait that sends
        nothing: a permit granted inside it and not handed out yet is given
        back by the limiter, as for any cancellation.

        Raises:
            RequestWithdrawnError: the gate is closed when the block starts, or
                gets closed while it waits.
        """
        if self._closed:
            raise self._error(f"withdrawn before sending: {self._what} is closed")
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - a coroutine awaited by asyncio runs in a task
            raise RuntimeError("Gate.watching must run in a task")
        self._waiting.add(task)
        try:
            yield
        except asyncio.CancelledError:
            # Our own cancel, and nobody else's too: the call is withdrawn, not cancelled.
            if task in self._withdrawing and task.uncancel() == 0:
                raise self._error(f"withdrawn before sending: {self._what} was closed") from None
            raise
        finally:
            self._waiting.discard(task)
            self._withdrawing.discard(task)
