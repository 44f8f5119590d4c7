"""The agents' side: the staff chat (``KEFU_STAFF_CHAT_ID``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from telegram import Message, Update
from telegram.error import TelegramError

from bot import keyboards, relay, texts
from bot.parsing import command_argument, media_of, text_of
from bot.services import KefuContext
from crm import agents, conversation, corrections, tickets
from crm.conversation import TicketAction
from crm.errors import TicketNotFound
from crm.schemas import TicketInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ActingAgent:
    id: int
    first_name: str


async def _agent(update: Update, context: KefuContext) -> ActingAgent | None:
    """The agent behind this update, or None after telling a non-agent they cannot act."""
    user = update.effective_user
    if user is None or not await context.services.staff.is_agent(context.bot, user.id):
        refusal = texts.staff_text("not_agent")
        if update.callback_query is not None:
            await update.callback_query.answer(refusal, show_alert=True)
        elif update.effective_message is not None:
            await update.effective_message.reply_html(refusal)
        return None
    services = context.services
    async with services.session() as session:
        row = await agents.upsert(
            session,
            telegram_user_id=user.id,
            first_name=user.first_name,
            username=user.username,
            now=services.now(),
        )
        return ActingAgent(row.id, row.first_name)


def _thread_id(message: Message) -> int | None:
    return message.message_thread_id if message.is_topic_message else None


async def _ticket_of(message: Message, context: KefuContext) -> TicketInfo | None:
    """The ticket a staff message is about; waits for a card or relay still being recorded."""
    reply = message.reply_to_message
    for _ in range(2):
        async with context.services.session() as session:
            ticket = await conversation.find_staff_ticket(
                session,
                chat_id=message.chat_id,
                thread_id=_thread_id(message),
                reply_to_message_id=reply.message_id if reply is not None else None,
            )
        pointed = reply is not None or _thread_id(message) is not None
        if ticket is not None or not pointed or not await context.services.staff.settle_postings():
            return ticket
    return None


async def _command_ticket(
    update: Update, context: KefuContext
) -> tuple[ActingAgent, TicketInfo] | None:
    """Agent and ticket for a command used in a ticket's topic or as a reply to it."""
    message = update.effective_message
    assert message is not None  # noqa: S101
    agent = await _agent(update, context)
    if agent is None:
        return None
    ticket = await _ticket_of(message, context)
    if ticket is None:
        await message.reply_html(texts.staff_text("not_in_ticket"))
        return None
    return agent, ticket


async def message(update: Update, context: KefuContext) -> None:
    """An agent's message in a ticket's topic, or replying to its card or a customer message."""
    msg, user = update.effective_message, update.effective_user
    assert msg is not None and user is not None  # noqa: S101
    ticket = await _ticket_of(msg, context)
    if ticket is None:
        reply_to = msg.reply_to_message
        if reply_to is not None and reply_to.from_user is not None and reply_to.from_user.is_bot:
            # A reply to one of Kefu's notices (not a card or a customer's message): it would
            # reach nobody, so say where to write instead of dropping it silently.
            await msg.reply_html(texts.staff_text("not_in_ticket"))
        return  # agents talking among themselves
    agent = await _agent(update, context)
    if agent is None:
        return
    services = context.services
    media = media_of(msg)
    async with services.session() as session:
        reply = await conversation.agent_message(
            session,
            ticket_id=ticket.id,
            agent_id=agent.id,
            text=text_of(msg),
            media=media,
            staff_chat_id=msg.chat_id,
            staff_message_id=msg.message_id,
            now=services.now(),
        )
    signature = None
    if services.settings.agent_signature:
        signature = texts.agent_signature(reply.customer.language, agent.first_name)
    try:
        customer_message_id = await relay.staff_to_customer(
            context.bot,
            customer=reply.customer,
            text=text_of(msg),
            media=media,
            from_chat_id=msg.chat_id,
            message_id=msg.message_id,
            signature=signature,
        )
    except TelegramError as exc:
        log.warning("relay to the customer of #%s failed: %s", ticket.number, exc)
        if reply.is_first_response:  # the customer got nothing: not a first response after all
            async with services.session() as session:
                await conversation.undo_first_response(session, ticket_id=ticket.id)
        await msg.reply_html(texts.staff_text("relay_failed", reason=str(exc)))
        return
    async with services.session() as session:
        await conversation.record_customer_copy(
            session,
            message_id=reply.message_id,
            customer_chat_id=reply.customer.chat_id or 0,
            customer_message_id=customer_message_id,
        )


async def claim(update: Update, context: KefuContext) -> None:
    found = await _command_ticket(update, context)
    if found is not None:
        await _claim(context, found[1].id, found[0])


async def resolve(update: Update, context: KefuContext) -> None:
    found = await _command_ticket(update, context)
    if found is not None:
        await _resolve(context, found[1].id, found[0])


async def reopen(update: Update, context: KefuContext) -> None:
    found = await _command_ticket(update, context)
    if found is not None:
        await _reopen(context, found[1].id, found[0])


async def note(update: Update, context: KefuContext) -> None:
    found = await _command_ticket(update, context)
    if found is None:
        return
    agent, ticket = found
    msg = update.effective_message
    assert msg is not None  # noqa: S101
    text = command_argument(msg)
    if not text:
        await msg.reply_html(texts.staff_text("note_empty"))
        return
    services = context.services
    async with services.session() as session:
        await conversation.add_note(
            session,
            ticket_id=ticket.id,
            agent_id=agent.id,
            text=text,
            staff_chat_id=msg.chat_id,
            staff_message_id=msg.message_id,
            now=services.now(),
        )
    await msg.reply_html(texts.staff_text("note_saved", number=ticket.number))


async def category(update: Update, context: KefuContext) -> None:
    """``/category NAME``: correct the ticket's category (a training example for the model)."""
    found = await _command_ticket(update, context)
    if found is None:
        return
    agent, ticket = found
    msg = update.effective_message
    assert msg is not None  # noqa: S101
    names = _categories(context)
    name = command_argument(msg).strip().lower().replace(" ", "_")
    if name not in names:
        key = "category_unknown" if name else "category_usage"
        await msg.reply_html(texts.staff_text(key, categories=", ".join(names)))
        return
    await _set_category(context, ticket.id, agent, name)


def _categories(context: KefuContext) -> tuple[str, ...]:
    analyzer = context.services.analyzer
    return analyzer.categories if analyzer is not None else ()


async def _set_category(
    context: KefuContext, ticket_id: int, agent: ActingAgent, name: str
) -> None:
    services = context.services
    async with services.session() as session:
        await corrections.create(
            session, ticket_id=ticket_id, agent_id=agent.id, category=name, now=services.now()
        )
        action = await conversation.ticket_action(session, ticket_id=ticket_id)
    await _announce(
        context,
        action,
        texts.staff_text(
            "category_set",
            agent=agent.first_name,
            number=action.ticket.number,
            category=texts.category_label(name),
        ),
    )


async def queue(update: Update, context: KefuContext) -> None:
    if await _agent(update, context) is None:
        return
    services = context.services
    async with services.session() as session:
        items = await tickets.queue(session)
    assert update.effective_message is not None  # noqa: S101
    for chunk in texts.split_lines(texts.queue(items, services.now())):
        await update.effective_message.reply_html(chunk)


async def button(update: Update, context: KefuContext) -> None:
    """Claim / Resolve / Reopen buttons on a ticket card."""
    query = update.callback_query
    assert query is not None  # noqa: S101
    agent = await _agent(update, context)
    if agent is None:
        return
    callback = keyboards.Callback.parse(query.data)
    ticket_id = callback.int_arg(0) if callback else None
    if callback is None or ticket_id is None:
        raise TicketNotFound()
    if callback.action == keyboards.CATEGORIES:  # show the category chooser on the card
        await query.edit_message_reply_markup(keyboards.categories(ticket_id, _categories(context)))
    elif callback.action == keyboards.CARD:  # back to the card's own buttons
        async with context.services.session() as session:
            action = await conversation.ticket_action(session, ticket_id=ticket_id)
        await query.edit_message_reply_markup(keyboards.staff_card(action.ticket))
    elif callback.action == keyboards.CATEGORY:
        name = callback.args[1] if len(callback.args) > 1 else ""
        if name not in _categories(context):
            raise TicketNotFound()
        await _set_category(context, ticket_id, agent, name)
    else:
        actions = {keyboards.CLAIM: _claim, keyboards.RESOLVE: _resolve, keyboards.REOPEN: _reopen}
        await actions[callback.action](context, ticket_id, agent)
    await query.answer()


async def _claim(context: KefuContext, ticket_id: int, agent: ActingAgent) -> None:
    services = context.services
    async with services.session() as session:
        action = await conversation.claim(
            session, ticket_id=ticket_id, agent_id=agent.id, now=services.now()
        )
    await _announce(
        context,
        action,
        texts.staff_text("claimed", agent=agent.first_name, number=action.ticket.number),
    )


async def _resolve(context: KefuContext, ticket_id: int, agent: ActingAgent) -> None:
    services = context.services
    async with services.session() as session:
        action = await conversation.resolve(
            session, ticket_id=ticket_id, agent_id=agent.id, now=services.now()
        )
    announcement = texts.staff_text("resolved", agent=agent.first_name, number=action.ticket.number)
    if action.customer.chat_id is not None:
        try:
            await relay.send_html(
                context.bot,
                action.customer.chat_id,
                texts.customer_text(
                    action.customer.language, "resolved", number=action.ticket.number
                ),
                reply_markup=keyboards.rating(action.ticket.id),
            )
        except TelegramError as exc:  # e.g. the customer blocked the bot: resolved all the same
            log.warning(
                "could not ask the customer of #%s for a rating: %s", action.ticket.number, exc
            )
            announcement += "\n" + texts.staff_text("relay_failed", reason=str(exc))
    await _announce(context, action, announcement)


async def _reopen(context: KefuContext, ticket_id: int, agent: ActingAgent) -> None:
    services = context.services
    async with services.session() as session:
        action = await conversation.reopen(session, ticket_id=ticket_id, now=services.now())
    await _announce(
        context,
        action,
        texts.staff_text("reopened", agent=agent.first_name, number=action.ticket.number),
    )


async def _announce(context: KefuContext, action: TicketAction, html_text: str) -> None:
    """Tell the ticket's place in the staff chat what happened and refresh its card."""
    place = relay.StaffPlace.of(action.ticket)
    if place is None:
        return
    await relay.post_to_place(context.bot, place, html_text)
    async with context.services.session() as session:
        card = await tickets.card(session, ticket_id=action.ticket.id)
    record = await context.services.customer_record(card.customer.id)
    await relay.refresh_card(context.services, context.bot, card, record)
