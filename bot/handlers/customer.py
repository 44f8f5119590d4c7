"""The customer's side (private chats): parse the update, call a flow. Nothing is sent here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Update

from bot import keyboards
from bot.parsing import customer_message, person_of, tap_of
from bot.services import KefuContext
from crm.db import retry_transient
from crm.support import flows
from crm.support.outcomes import Outcome
from crm.support.understanding import prepare

Flow = Callable[[AsyncSession], Awaitable[Outcome]]


async def run(update: Update, context: KefuContext, flow: Flow) -> Outcome:
    """Run ``flow`` for this update: one transaction, the update marked done with it."""
    return await context.services.runner.run(flow, update_id=update.update_id)


async def start(update: Update, context: KefuContext) -> None:
    await _greet(update, context, "start")


async def help_command(update: Update, context: KefuContext) -> None:
    """``/help``, and any command Kefu does not know."""
    await _greet(update, context, "help")


async def _greet(update: Update, context: KefuContext, key: str) -> None:
    services, person = context.services, person_of(update)
    await run(
        update,
        context,
        lambda s: flows.greeted(s, desk=services.desk, person=person, key=key, now=services.now()),
    )


async def status(update: Update, context: KefuContext) -> None:
    services, person = context.services, person_of(update)
    await run(
        update,
        context,
        lambda s: flows.status_asked(s, desk=services.desk, person=person, now=services.now()),
    )


async def new_ticket(update: Update, context: KefuContext) -> None:
    services, person = context.services, person_of(update)
    await run(
        update,
        context,
        lambda s: flows.new_ticket_asked(s, desk=services.desk, person=person, now=services.now()),
    )


async def human(update: Update, context: KefuContext) -> None:
    services, person = context.services, person_of(update)
    await run(
        update,
        context,
        lambda s: flows.human_asked(s, desk=services.desk, person=person, now=services.now()),
    )


async def language(update: Update, context: KefuContext) -> None:
    services, person = context.services, person_of(update)
    await run(
        update,
        context,
        lambda s: flows.language_menu(s, desk=services.desk, person=person, now=services.now()),
    )


async def language_chosen(update: Update, context: KefuContext) -> None:
    services, person, tap = context.services, person_of(update), tap_of(update)
    callback = keyboards.Callback.parse(tap_data(update))
    code = callback.args[0] if callback and callback.args else ""
    await run(
        update,
        context,
        lambda s: flows.language_chosen(
            s, desk=services.desk, person=person, tap=tap, code=code, now=services.now()
        ),
    )


async def message(update: Update, context: KefuContext) -> None:
    """Any customer message: understood first (off the event loop), then one flow."""
    msg = update.effective_message
    assert msg is not None  # noqa: S101 - the filter passes messages only
    services, person = context.services, person_of(update)
    incoming = customer_message(msg, person)
    if not incoming.text.strip() and incoming.media is None:
        return  # nothing a person could read or see (e.g. a story or a game): no ticket
    now = services.now()
    understood = await retry_transient(
        lambda: prepare(
            services.read_factory or services.session_factory,
            services.analyzer,
            telegram_user_id=person.telegram_user_id,
            text=incoming.text,
            now=now,
        ),
        what="understanding a message",
    )
    await run(
        update,
        context,
        lambda s: flows.customer_wrote(
            s, desk=services.desk, incoming=incoming, understood=understood, now=now
        ),
    )


async def rate(update: Update, context: KefuContext) -> None:
    """A tap on one of the five rating buttons."""
    services, person, tap = context.services, person_of(update), tap_of(update)
    callback = keyboards.Callback.parse(tap_data(update))
    ticket_id = (callback.int_arg(0) if callback else None) or 0
    score = (callback.int_arg(1) if callback else None) or 0
    await run(
        update,
        context,
        lambda s: flows.rated(
            s,
            desk=services.desk,
            person=person,
            tap=tap,
            ticket_id=ticket_id,
            score=score,
            now=services.now(),
        ),
    )


async def solved(update: Update, context: KefuContext) -> None:
    """Yes / No under an automatic answer."""
    services, person, tap = context.services, person_of(update), tap_of(update)
    callback = keyboards.Callback.parse(tap_data(update))
    ticket_id = (callback.int_arg(0) if callback else None) or 0
    said_yes = callback is not None and callback.args[1:2] == (keyboards.YES,)
    answer_language = callback.args[2] if callback and len(callback.args) > 2 else None
    await run(
        update,
        context,
        lambda s: flows.verdict(
            s,
            desk=services.desk,
            person=person,
            tap=tap,
            ticket_id=ticket_id,
            solved=said_yes,
            language=answer_language,
            now=services.now(),
        ),
    )


def tap_data(update: Update) -> str | None:
    return update.callback_query.data if update.callback_query is not None else None
