"""Agents: the people who answer tickets in the staff chat."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.models import Agent


async def get(session: AsyncSession, *, agent_id: int) -> Agent | None:
    return await session.get(Agent, agent_id)


async def upsert(
    session: AsyncSession,
    *,
    telegram_user_id: int,
    first_name: str,
    username: str | None,
    now: datetime,
) -> Agent:
    result = await session.execute(select(Agent).where(Agent.telegram_user_id == telegram_user_id))
    agent = result.scalar_one_or_none()
    if agent is None:
        agent = Agent(telegram_user_id=telegram_user_id, created_at=now)
        session.add(agent)
    agent.first_name = first_name
    agent.username = username
    agent.last_seen_at = now
    await session.flush()
    return agent
