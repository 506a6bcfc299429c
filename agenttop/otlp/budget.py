"""The memory budget for request bodies: how many bytes of them the receiver holds at once.

The writer's queue bounds decoded rows, not the bodies they come from: without this bound
a client opening many concurrent calls of the largest allowed size could make the receiver
hold all of them. A call is admitted before its body is read, counted as the largest
message allowed until its real size is known, and released when it is answered.

A call that does not fit waits its turn, briefly and in order, before it is refused: bodies
are read in milliseconds, and a burst of small calls should not be turned away because
each of them might have been large. Waiting is cheap as long as the transport buffers
little for a stream nobody reads (see ``start_server``), and the number of waiting calls is
bounded too.
"""

from __future__ import annotations

import asyncio
from collections import deque

# Even an empty call holds what HTTP/2 lets its client send before the body is read (the
# default stream window) and the call's own bookkeeping.
MIN_CHARGE = 64 * 1024
# Calls allowed to wait: one per this many bytes of budget (256 for 64 MiB).
BYTES_PER_WAITING_CALL = 256 * 1024
MAX_WAIT_S = 1.0


class BodyBudget:
    """Admission by bytes of request bodies held, for calls served on one event loop."""

    def __init__(self, limit_bytes: int, largest_message_bytes: int,
                 max_wait_s: float = MAX_WAIT_S) -> None:
        self.limit = limit_bytes
        self.unread_charge = max(largest_message_bytes, MIN_CHARGE)
        self.max_waiting = max(1, limit_bytes // BYTES_PER_WAITING_CALL)
        self.max_wait_s = max_wait_s
        self.held = 0
        self.refused = 0  # calls turned away because the budget stayed spent
        # Exactly the undecided turns, with what each will be charged.
        self._waiting: deque[tuple[asyncio.Future[None], int]] = deque()

    def _fits(self, charge: int) -> bool:
        # Always true when nothing is held, so a message of any allowed size gets through
        # however small the budget.
        return not self.held or self.held + charge <= self.limit

    async def admit(self, size: int | None = None) -> int | None:
        """Admit a call whose body is not read yet: its charge, or None to refuse it.

        ``size``: what the body will be, where the transport says so beforehand (HTTP's
        Content-Length); otherwise it is charged as the largest message allowed."""
        charge = self.unread_charge if size is None else max(min(size, self.unread_charge),
                                                             MIN_CHARGE)
        if not self._waiting and self._fits(charge):
            self.held += charge
            return charge
        if len(self._waiting) >= self.max_waiting:
            self.refused += 1
            return None
        turn = asyncio.get_running_loop().create_future()
        entry = (turn, charge)
        self._waiting.append(entry)
        try:
            await asyncio.wait((turn,), timeout=self.max_wait_s)
        except asyncio.CancelledError:  # the client went away while waiting
            if turn.done():
                self.release(charge)
            raise
        finally:
            if not turn.done():
                turn.cancel()
                self._waiting.remove(entry)
        if turn.cancelled():
            self.refused += 1
            return None
        return charge

    def resize(self, charge: int, size: int) -> int:
        """The body is read: count its real size instead; returns the new charge."""
        new = max(size, MIN_CHARGE)
        self.held += new - charge
        self._grant()
        return new

    def release(self, charge: int) -> None:
        self.held -= charge
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self._fits(self._waiting[0][1]):
            turn, charge = self._waiting.popleft()
            self.held += charge
            turn.set_result(None)
