"""Linking a Telegram customer to an imported customer record.

A person who writes to the bot gets a customer row keyed by their Telegram id. A business's own
customer list arrives through ``python main.py import customers`` with an external id. The two are
the same person when:

* the customer shares their phone number (Telegram's contact button) and it matches the record's
  phone (:func:`link_by_phone`);
* the record carries the customer's Telegram id or @username (:func:`link_by_telegram`, and the
  importer does the same when the Telegram row already exists);
* the customer sends ``/link CODE`` with the record's link code (:func:`link_by_code`).

Linking merges the two rows: the imported record survives (it is the one the business knows) and
takes over the Telegram identity, tickets, messages, ratings and transactions of the Telegram row,
which is deleted. Services only flush; the caller commits.

Phone numbers are compared in a normalised form (no external library): ``+`` followed by the
digits when the number is international (written with ``+`` or ``00``, and every number Telegram
shares), otherwise the national digits without leading trunk zeros. An international number
matches a national one when it ends with it and the national one has at least
:data:`MIN_SUFFIX_DIGITS` digits (``+44 7700 900123`` matches ``07700 900123``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm.models import Customer, Message, Rating, Ticket, Transaction

MIN_SUFFIX_DIGITS = 8
MIN_PHONE_DIGITS, MAX_PHONE_DIGITS = 7, 15
_PHONE_CHARS = re.compile(r"^[\d\s+\-().\/]+$")
_USERNAME = re.compile(r"^@?([A-Za-z][A-Za-z0-9_]{3,31})$")


class LinkStatus(StrEnum):
    LINKED = "linked"  # merged into an imported record just now
    ALREADY_LINKED = "already_linked"  # this Telegram customer already is that record
    NOT_FOUND = "not_found"  # no record with this phone / code / username
    AMBIGUOUS = "ambiguous"  # several records share the phone: an agent has to decide
    TAKEN = "taken"  # the record belongs to another Telegram account
    INVALID = "invalid"  # not a phone number / code at all
    TOO_MANY = "too_many"  # too many wrong codes lately: guessing codes is not allowed


MAX_CODE_FAILURES = 5
CODE_FAILURE_WINDOW = timedelta(hours=1)
_FAILURES = "link_code_failures"


@dataclass(frozen=True, slots=True)
class LinkResult:
    status: LinkStatus
    customer_id: int  # the surviving customer row of this Telegram user
    external_id: str | None = None


def normalize_phone(raw: str | None, *, international: bool = False) -> str | None:
    """``+<digits>`` for international numbers, national digits otherwise; None if not a phone.

    ``international=True`` treats a number without ``+`` as international (Telegram shares
    numbers as bare digits with the country code).
    """
    if raw is None:
        return None
    text = raw.strip()
    if not text or not _PHONE_CHARS.match(text):
        return None
    digits = re.sub(r"\D", "", text)
    is_international = international or text.startswith("+")
    if not is_international and digits.startswith("00"):
        is_international, digits = True, digits[2:]
    if not is_international:
        digits = digits.lstrip("0")
    if not MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS:
        return None
    return f"+{digits}" if is_international else digits


def phone_keys(normalized: str) -> list[str]:
    """Stored phone values that match an international number (itself and national suffixes)."""
    if not normalized.startswith("+"):
        return [normalized]
    digits = normalized[1:]
    suffixes = [digits[i:] for i in range(len(digits) - MIN_SUFFIX_DIGITS + 1)]
    return [normalized, *suffixes]


def phones_match(a: str, b: str) -> bool:
    """Whether two normalised phone numbers name the same line."""
    if a == b:
        return True
    if a.startswith("+") and b.startswith("+"):
        return False
    intl, national = (a, b) if a.startswith("+") else (b, a)
    if not intl.startswith("+"):
        return False
    return len(national) >= MIN_SUFFIX_DIGITS and intl[1:].endswith(national)


def normalize_username(raw: str | None) -> str | None:
    """A Telegram username without ``@``, or None when it cannot be one."""
    if raw is None:
        return None
    match = _USERNAME.match(raw.strip())
    return match.group(1) if match else None


async def merge_customers(session: AsyncSession, *, source_id: int, target_id: int) -> Customer:
    """Move everything of customer ``source_id`` to ``target_id`` and delete the source row.

    The target keeps its own values and takes the source's Telegram identity (id, chat,
    username, language, first/last seen) and, where it has none, the name and phone.
    """
    if source_id == target_id:
        return await session.get_one(Customer, target_id)
    source = await session.get_one(Customer, source_id)
    target = await session.get_one(Customer, target_id)
    identity = {
        "telegram_user_id": source.telegram_user_id,
        "telegram_chat_id": source.telegram_chat_id,
        "telegram_username": source.telegram_username,
        "language": source.language,
        "first_seen_at": source.first_seen_at,
        "last_seen_at": source.last_seen_at,
    }
    first_name, last_name, phone = source.first_name, source.last_name, source.phone
    source_first_seen = source.first_seen_at
    attributes = {
        k: v for k, v in {**source.attributes, **target.attributes}.items() if k != _FAILURES
    }
    tags = list(dict.fromkeys([*target.tags, *source.tags]))
    target_current = await session.scalar(
        select(Ticket.id).where(Ticket.customer_id == target_id, Ticket.is_current.is_(True))
    )
    if target_current is not None:  # one current ticket per customer: the record's stays
        await session.execute(
            update(Ticket)
            .where(Ticket.customer_id == source_id)
            .values(is_current=False)
            .execution_options(synchronize_session="fetch")
        )
    for model in (Ticket, Message, Rating, Transaction):
        await session.execute(
            update(model)
            .where(model.customer_id == source_id)
            .values(customer_id=target_id)
            .execution_options(synchronize_session="fetch")
        )
    await session.execute(
        delete(Customer)
        .where(Customer.id == source_id)
        .execution_options(synchronize_session="fetch")
    )
    await session.flush()
    for key, value in identity.items():
        if value is not None:
            setattr(target, key, value)
    if not target.first_name and first_name:
        target.first_name, target.last_name = first_name, last_name
    if not target.phone and phone:
        target.phone = phone
    source_first = source_first_seen
    if target.first_seen_at is not None and source_first is not None:
        target.first_seen_at = min(target.first_seen_at, source_first)
    target.attributes = attributes
    target.tags = tags
    await session.flush()
    return target


async def _link(session: AsyncSession, customer: Customer, record: Customer) -> LinkResult:
    """Merge the Telegram row ``customer`` into the imported ``record`` unless it is taken."""
    if record.id == customer.id:
        return LinkResult(LinkStatus.ALREADY_LINKED, customer.id, record.external_id)
    if record.telegram_user_id is not None and record.telegram_user_id != customer.telegram_user_id:
        return LinkResult(LinkStatus.TAKEN, customer.id)
    if customer.external_id is not None:
        # This Telegram user is already linked to another record: never merge two records.
        return LinkResult(LinkStatus.TAKEN, customer.id, customer.external_id)
    merged = await merge_customers(session, source_id=customer.id, target_id=record.id)
    return LinkResult(LinkStatus.LINKED, merged.id, merged.external_id)


async def link_by_phone(session: AsyncSession, *, customer_id: int, phone: str) -> LinkResult:
    """The customer shared their phone (their own contact): link to the record with that phone.

    The number is stored on the customer either way, so a later import can link by it.
    """
    normalized = normalize_phone(phone, international=True)
    customer = await session.get_one(Customer, customer_id)
    if normalized is None:
        return LinkResult(LinkStatus.INVALID, customer.id, customer.external_id)
    if customer.external_id is not None:
        if customer.phone is None:
            customer.phone = normalized
            await session.flush()
        return LinkResult(LinkStatus.ALREADY_LINKED, customer.id, customer.external_id)
    customer.phone = normalized
    await session.flush()
    result = await session.execute(
        select(Customer).where(
            Customer.phone.in_(phone_keys(normalized)),
            Customer.external_id.is_not(None),
            Customer.id != customer.id,
        )
    )
    candidates = [
        c
        for c in result.scalars()
        if c.telegram_user_id is None or c.telegram_user_id == customer.telegram_user_id
    ]
    if not candidates:
        return LinkResult(LinkStatus.NOT_FOUND, customer.id)
    if len(candidates) > 1:
        return LinkResult(LinkStatus.AMBIGUOUS, customer.id)
    return await _link(session, customer, candidates[0])


async def link_by_code(
    session: AsyncSession, *, customer_id: int, code: str, now: datetime | None = None
) -> LinkResult:
    """``/link CODE``: link to the record whose link code is CODE (case-insensitive).

    At most ``MAX_CODE_FAILURES`` wrong codes per hour and customer, so codes cannot be guessed.
    """
    now = now or datetime.now(UTC)
    code = code.strip()
    customer = await session.get_one(Customer, customer_id)
    if not code or len(code) > 64:
        return LinkResult(LinkStatus.INVALID, customer.id, customer.external_id)
    recent = [
        stamp
        for stamp in customer.attributes.get(_FAILURES, [])
        if datetime.fromisoformat(stamp) > now - CODE_FAILURE_WINDOW
    ]
    if len(recent) >= MAX_CODE_FAILURES:
        return LinkResult(LinkStatus.TOO_MANY, customer.id, customer.external_id)
    result = await session.execute(
        select(Customer).where(func.upper(Customer.link_code) == code.upper()).limit(2)
    )
    records = list(result.scalars())
    if len(records) != 1:
        customer.attributes = {**customer.attributes, _FAILURES: [*recent, now.isoformat()]}
        await session.flush()
        return LinkResult(LinkStatus.NOT_FOUND, customer.id, customer.external_id)
    return await _link(session, customer, records[0])


async def link_by_telegram(session: AsyncSession, *, customer_id: int) -> LinkResult:
    """At first contact: link to an imported record that names this Telegram @username.

    (A record that names the Telegram *id* needs no linking: the bot finds it by id directly.)
    Only records without a Telegram id are considered, and only when exactly one matches.
    """
    customer = await session.get_one(Customer, customer_id)
    if customer.external_id is not None:
        return LinkResult(LinkStatus.ALREADY_LINKED, customer.id, customer.external_id)
    username = normalize_username(customer.telegram_username)
    if username is None:
        return LinkResult(LinkStatus.NOT_FOUND, customer.id)
    result = await session.execute(
        select(Customer)
        .where(
            # the importer stores usernames in lower case (an index lookup)
            Customer.telegram_username == username.lower(),
            Customer.external_id.is_not(None),
            Customer.telegram_user_id.is_(None),
        )
        .limit(2)
    )
    records = list(result.scalars())
    if not records:
        return LinkResult(LinkStatus.NOT_FOUND, customer.id)
    if len(records) > 1:
        return LinkResult(LinkStatus.AMBIGUOUS, customer.id)
    return await _link(session, customer, records[0])
