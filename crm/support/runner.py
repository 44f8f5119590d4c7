"""One transaction per flow: the state change, its outbox rows and the inbox mark commit together.

A flow that loses a race with another process (a unique index says no) runs again and decides
afresh; expected domain errors (:class:`crm.errors.KefuError`) roll everything back and propagate.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.db import SessionFactory, retry_transient, session_scope
from crm.support import inbox, outbox
from crm.support.outcomes import Outcome

log = logging.getLogger(__name__)

Flow = Callable[[AsyncSession], Awaitable[Outcome]]
RACE_RETRIES = 3


class FlowRunner:
    """Runs flows; ``on_commit`` is told when new outbox rows exist (delivery wakes up)."""

    def __init__(
        self,
        factory: SessionFactory,
        *,
        clock: Callable[[], datetime],
        on_commit: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.on_commit = on_commit

    async def run(
        self, flow: Flow, *, update_id: int | None = None, store_effects: bool = True
    ) -> Outcome:
        """Run ``flow`` in one transaction. With ``update_id``, an update already handled is not
        handled again (empty outcome with ``duplicate``) and the update is marked done."""
        for attempt in range(1, RACE_RETRIES + 1):
            try:
                outcome = await retry_transient(
                    lambda: self._once(flow, update_id, store_effects), what="running a flow"
                )
            except IntegrityError:
                if attempt == RACE_RETRIES:
                    raise
                log.info("a concurrent change won a race; deciding again (attempt %d)", attempt)
                continue
            if outcome.effects and store_effects and self.on_commit is not None:
                self.on_commit(outcome)
            return outcome
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, flow: Flow, update_id: int | None, store_effects: bool) -> Outcome:
        async with session_scope(self.factory) as session:
            if update_id is not None and not await inbox.claim(session, update_id=update_id):
                return Outcome(duplicate=True)
            outcome = await flow(session)
            now = self.clock()
            if store_effects:  # the console carries effects out itself, as text
                await outbox.add(session, effects=outcome.effects, now=now)
            if update_id is not None:
                await inbox.mark_done(session, update_ids=[update_id], now=now)
        return outcome

    async def effects_only(self, outcome: Outcome, *, update_id: int | None = None) -> Outcome:
        """Store effects decided outside a flow (an error reply) and mark the update done."""

        async def store(session: AsyncSession) -> Outcome:
            return outcome

        return await self.run(store, update_id=update_id)
