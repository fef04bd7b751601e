"""Steps planned in the same round, sharing requests (bulk reads and bulk writes).

Each step waits in :meth:`Rounds.join` as it would for a request of its own. The first to
arrive leads: it lets the round's other steps queue (one turn of the event loop), takes a batch
from the queue (:meth:`Rounds.take`), and carries it out inside a transfer slot
(:meth:`Rounds.carry_out`), which settles each step's ``done``. The others wait for the leader
and lead the next batch if theirs was not taken. A leader cancelled part-way puts back what it
took and did not finish.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Generic, Protocol, TypeVar


class Step(Protocol):
    """One waiting step: settled (result or exception) by the batch that carries it out."""

    @property
    def done(self) -> asyncio.Future[None]: ...


S = TypeVar("S", bound=Step)


class Rounds(ABC, Generic[S]):
    """The queue and the leader of one engine's batched steps of one kind."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self.slots = slots
        self._queue: list[S] = []
        self._leading = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def join(self, step: S) -> None:
        """Wait until *step* is carried out, in a batch with the steps queued beside it."""
        self._queue.append(step)
        while not step.done.done():
            if self._leading:
                await self._idle.wait()
                continue
            self._leading = True
            self._idle.clear()
            batch: list[S] = []
            try:
                await asyncio.sleep(0)  # one turn: the round's other steps queue up
                batch, self._queue = self.take(self._queue)
                async with self.slots:
                    await self.carry_out(batch)
            finally:
                # Cancelled part-way: what was taken and not done goes back to the queue.
                self._queue[:0] = [s for s in batch if not s.done.done() and s is not step]
                self._leading = False
                self._idle.set()
        step.done.result()

    @abstractmethod
    def take(self, queue: list[S]) -> tuple[list[S], list[S]]:
        """The next batch and what stays queued."""

    @abstractmethod
    async def carry_out(self, batch: list[S]) -> None:
        """Carry out *batch*, settling every step's ``done``."""
