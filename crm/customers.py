"""Customers: the CRM record behind each person who writes to support."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.models import Customer

SUPPORTED_LANGUAGES = ("en", "zh")


def normalize_language(code: str | None, *, default: str = "en") -> str:
    """Map Telegram's IETF ``language_code`` (``zh-hans``, ``en-US``) to a supported language."""
    if not code:
        return default
    base = code.lower().replace("_", "-").split("-")[0]
    return base if base in SUPPORTED_LANGUAGES else default


async def get(session: AsyncSession, *, customer_id: int) -> Customer | None:
    return await session.get(Customer, customer_id)


async def get_by_telegram_id(session: AsyncSession, *, telegram_user_id: int) -> Customer | None:
    result = await session.execute(
        select(Customer).where(Customer.telegram_user_id == telegram_user_id)
    )
    return result.scalar_one_or_none()


async def upsert_from_telegram(
    session: AsyncSession,
    *,
    telegram_user_id: int,
    chat_id: int,
    first_name: str,
    last_name: str | None,
    username: str | None,
    language_code: str | None,
    now: datetime,
    default_language: str = "en",
) -> Customer:
    """Find or create the customer for a Telegram user and refresh what Telegram tells us."""
    customer = await get_by_telegram_id(session, telegram_user_id=telegram_user_id)
    if customer is None:
        customer = Customer(
            telegram_user_id=telegram_user_id,
            language=normalize_language(language_code, default=default_language),
            first_seen_at=now,
            created_at=now,
            tags=[],
            attributes={},
        )
        session.add(customer)
    customer.telegram_chat_id = chat_id
    if customer.external_id is None:  # an imported record keeps the business's name for them
        customer.first_name = first_name
        customer.last_name = last_name
    customer.telegram_username = username
    customer.last_seen_at = now
    await session.flush()
    return customer


async def set_language(session: AsyncSession, *, customer_id: int, language: str) -> Customer:
    customer = await session.get_one(Customer, customer_id)
    customer.language = normalize_language(language, default=customer.language)
    await session.flush()
    return customer
