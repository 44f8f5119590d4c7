"""The customer's record as agents see it: value, last order, open tickets, ratings, predicted need.

``customer_record`` is what the staff card and ``/customer ID`` show; ``find_customer`` resolves
what an agent types after ``/customer``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Float, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm import needs
from crm.features import EXCLUDED_STATUSES
from crm.models import ACTIVE_STATUSES, Customer, Rating, Ticket, Transaction
from crm.needs import Need, NeedsModel

RECENT_RATINGS = 5
_TICKET_REF = re.compile(r"^#(\d+)$")


@dataclass(frozen=True, slots=True)
class LastOrder:
    occurred_at: datetime
    amount: Decimal
    currency: str
    product: str | None
    category: str | None
    status: str | None


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    customer_id: int
    name: str
    external_id: str | None
    email: str | None
    phone: str | None
    telegram_user_id: int | None
    telegram_username: str | None
    created_at: datetime
    lifetime_value: dict[str, Decimal]  # currency ("" when unknown) -> sum of counted orders
    orders: int
    last_order: LastOrder | None
    open_tickets: list[int]  # ticket numbers still being worked on
    tickets_total: int
    ratings: list[int]  # the latest ratings, newest first
    mean_rating: float | None
    rating_count: int
    need: Need | None = None
    attributes: dict[str, object] = field(default_factory=dict)

    @property
    def is_linked(self) -> bool:
        """Both an imported record and a Telegram account."""
        return self.external_id is not None and self.telegram_user_id is not None


async def customer_record(
    session: AsyncSession,
    *,
    customer_id: int,
    model: NeedsModel | None = None,
    now: datetime | None = None,
) -> CustomerRecord | None:
    """Everything agents should know about one customer; ``need`` only with a model and ``now``."""
    customer = await session.get(Customer, customer_id)
    if customer is None:
        return None
    counted = or_(Transaction.status.is_(None), Transaction.status.not_in(EXCLUDED_STATUSES))
    ltv_rows = await session.execute(
        select(Transaction.currency, func.sum(Transaction.amount), func.count())
        .where(Transaction.customer_id == customer_id, counted)
        .group_by(Transaction.currency)
        .order_by(Transaction.currency)
    )
    lifetime: dict[str, Decimal] = {}
    orders = 0
    for currency, total, count in ltv_rows:
        lifetime[currency or ""] = Decimal(total or 0).quantize(Decimal("0.01"))
        orders += int(count)
    last = (
        await session.execute(
            select(Transaction)
            .where(Transaction.customer_id == customer_id)
            .order_by(Transaction.occurred_at.desc(), Transaction.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    last_order = (
        LastOrder(
            last.occurred_at,
            Decimal(last.amount).quantize(Decimal("0.01")),
            last.currency,
            last.product,
            last.category,
            last.status,
        )
        if last is not None
        else None
    )
    open_numbers = [
        int(n)
        for n in (
            await session.execute(
                select(Ticket.number)
                .where(Ticket.customer_id == customer_id, Ticket.status.in_(ACTIVE_STATUSES))
                .order_by(Ticket.created_at, Ticket.id)
            )
        ).scalars()
        if n is not None
    ]
    tickets_total = int(
        await session.scalar(select(func.count(Ticket.id)).where(Ticket.customer_id == customer_id))
        or 0
    )
    recent = [
        int(s)
        for s in (
            await session.execute(
                select(Rating.score)
                .where(Rating.customer_id == customer_id)
                .order_by(Rating.created_at.desc(), Rating.id.desc())
                .limit(RECENT_RATINGS)
            )
        ).scalars()
    ]
    mean, count = (
        await session.execute(
            select(func.avg(cast(Rating.score, Float)), func.count(Rating.id)).where(
                Rating.customer_id == customer_id
            )
        )
    ).one()
    need = None
    if model is not None and now is not None:
        try:
            need = await needs.predict_customer(
                session, model=model, customer_id=customer_id, now=now
            )
        except needs.NeedsError:
            need = None  # e.g. a table model whose columns this customer does not have
    return CustomerRecord(
        customer_id=customer.id,
        name=customer.display_name,
        external_id=customer.external_id,
        email=customer.email,
        phone=customer.phone,
        telegram_user_id=customer.telegram_user_id,
        telegram_username=customer.telegram_username,
        created_at=customer.created_at,
        lifetime_value=lifetime,
        orders=orders,
        last_order=last_order,
        open_tickets=open_numbers,
        tickets_total=tickets_total,
        ratings=recent,
        mean_rating=float(mean) if mean is not None else None,
        rating_count=int(count or 0),
        need=need,
        attributes=dict(customer.attributes or {}),
    )


async def find_customer(session: AsyncSession, *, query: str) -> int | None:
    """The customer an agent means by ``query``.

    ``#1042`` is a ticket number; ``@name`` a Telegram username; plain digits are tried as a
    ticket number, then a Telegram user id, then an external id; anything else is an external id.
    """
    text = query.strip()
    if not text:
        return None
    match = _TICKET_REF.match(text)
    if match:
        return await _by_ticket(session, int(match.group(1)))
    if text.startswith("@"):
        found = await session.scalar(
            select(Customer.id)
            .where(func.lower(Customer.telegram_username) == text[1:].lower())
            .order_by(Customer.id)
            .limit(1)
        )
        return int(found) if found is not None else None
    # An exact external id wins: exports often use plain numbers (write #1042 for a ticket).
    found = await session.scalar(select(Customer.id).where(Customer.external_id == text))
    if found is not None:
        return int(found)
    if text.isdigit() and len(text) <= 18:
        number = int(text)
        found_id = await _by_ticket(session, number)
        if found_id is not None:
            return found_id
        found = await session.scalar(select(Customer.id).where(Customer.telegram_user_id == number))
        if found is not None:
            return int(found)
    return None


async def _by_ticket(session: AsyncSession, number: int) -> int | None:
    if number > 2**31 - 1:
        return None
    found = await session.scalar(select(Ticket.customer_id).where(Ticket.number == number))
    return int(found) if found is not None else None
