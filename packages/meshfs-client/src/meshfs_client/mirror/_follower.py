"""The remote follower: the remote tree kept current from the change feed.

It catches up from the stored cursor with ``/sync/pull``, then follows the WebSocket push
(:class:`~meshfs_client.ChangeFeed`, which falls back to pulling). Every event updates the remote
tree in the state database together with the cursor and marks the paths it touched; the echo of
one of our own changes releases the paths held for it. A ``reset`` answer relists the whole
remote root (full reconciliation).
"""

from __future__ import annotations

import time
from functools import partial

from meshfs_client._watch import ChangeFeed, FeedReset
from meshfs_client.mirror._bookkeeping import EngineBase, echo_key, log
from meshfs_client.mirror._status import SyncEvent
from meshfs_common.models import ChangeEvent


class RemoteFollower(EngineBase):
    """Applies the server's change feed to the remote tree and marks what it touched."""

    def _feed_state(self, feed: ChangeFeed) -> None:
        self.status.feed = feed.mode if feed.state != "offline" else "offline"
        if feed.state == "offline":
            self._offline(feed.error, max(0.0, feed.retry_at - time.monotonic()))
        elif feed.state == "live":
            self.status.live = True
            self._online()

    async def _relist(self) -> None:
        touched = await self._with_retry(lambda: self.tree.relist(self.client))
        self._mark(touched)
        self._mark(self.state.synced)
        self._emit(SyncEvent("reset", "/", "full reconciliation from a listing"))

    async def _catch_up(self) -> bool:
        """Pull events until the feed has no more; True when any arrived."""
        any_event = False
        while True:
            cursor = self.state.cursor or 0
            page = await self._with_retry(partial(self.client.pull, cursor))
            if page.reset:
                await self._relist()
                self.state.cursor = page.cursor
                any_event = True
            for event in page.events:
                if event.seq > cursor:
                    self._apply(event)
                    any_event = True
            await self._walk_moved_in()
            if not page.events and not page.reset:
                self.state.cursor = max(cursor, page.cursor)
            self.state.commit()
            self.status.cursor = self.state.cursor or 0
            if not page.has_more:
                return any_event

    def _apply(self, event: ChangeEvent) -> None:
        log.debug("%s event %s %s %s", self.target.name, event.seq, event.type, event.path)
        self._activity()
        applied = self.tree.apply(event)
        self.state.cursor = event.seq
        key = echo_key(event.type, event.node_id, event.version_id)
        echoed = self._echo_keys.pop(key, None)
        if echoed is not None:
            for rel in echoed[0]:
                if self._held.get(rel) == key:
                    del self._held[rel]
            self._mark(echoed[0])
        elif applied.renamed is not None:
            self._hints.append(applied.renamed)
        if applied.exchanged is not None:
            self._swaps.append(applied.exchanged)
        if applied.walk is not None:
            self._walks.append(applied.walk)
        self._mark(applied.touched)

    async def _walk_moved_in(self) -> None:
        """List directories that moved into the mirror from elsewhere on the server."""
        while self._walks:
            walked = self._walks.pop()
            self._mark(await self._with_retry(partial(self.tree.relist, self.client, walked)))

    async def _follow_remote(self) -> None:
        while True:
            cursor = self.state.cursor or 0
            feed = self.client.watch(
                cursor, websocket=self.options.websocket, on_state=self._feed_state
            )
            async with feed:
                count = 0
                async for item in feed:
                    if isinstance(item, FeedReset):
                        await self._relist()
                        self.state.cursor = item.cursor
                    else:
                        self._apply(item)
                    await self._walk_moved_in()
                    count += 1
                    if feed.live or count % 256 == 0:
                        self.state.commit()
                    self.status.cursor = self.state.cursor or 0
                    self.status.live = feed.live
                    self.status.feed = feed.mode if feed.state != "offline" else "offline"


__all__ = ["RemoteFollower"]
