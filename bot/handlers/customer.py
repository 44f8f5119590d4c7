"""The customer's side: private chats with the bot."""

from __future__ import annotations

import logging

from telegram import ForceReply, Update
from telegram.constants import ParseMode

from bot import keyboards, relay, texts, understanding
from bot.parsing import incoming
from bot.services import KefuContext
from bot.understanding import Understood
from crm import conversation, customers, tickets
from crm.conversation import Routed, RouteKind
from crm.schemas import CustomerInfo, MessageInfo

log = logging.getLogger(__name__)


async def current_customer(update: Update, context: KefuContext) -> CustomerInfo:
    """The customer behind this update, created on first contact."""
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None  # noqa: S101 - filters guarantee a private chat
    services = context.services
    async with services.session() as session:
        row = await customers.upsert_from_telegram(
            session,
            telegram_user_id=user.id,
            chat_id=chat.id,
            first_name=user.first_name,
            last_name=user.last_name,
            username=user.username,
            language_code=user.language_code,
            now=services.now(),
            default_language=services.settings.default_language,
        )
        return CustomerInfo.of(row)


async def _reply(update: Update, html_text: str, **kwargs: object) -> None:
    assert update.effective_message is not None  # noqa: S101
    await update.effective_message.reply_html(html_text, **kwargs)  # type: ignore[arg-type]


async def start(update: Update, context: KefuContext) -> None:
    customer = await current_customer(update, context)
    await _reply(update, texts.customer_text(customer.language, "start", name=customer.first_name))


async def help_command(update: Update, context: KefuContext) -> None:
    customer = await current_customer(update, context)
    await _reply(update, texts.customer_text(customer.language, "help"))


async def status(update: Update, context: KefuContext) -> None:
    customer = await current_customer(update, context)
    async with context.services.session() as session:
        active = await tickets.list_active_for_customer(session, customer_id=customer.id)
    await _reply(update, texts.status_list(customer.language, active, context.services.settings.tz))


async def new_ticket(update: Update, context: KefuContext) -> None:
    customer = await current_customer(update, context)
    async with context.services.session() as session:
        await conversation.request_new_ticket(session, customer_id=customer.id)
    await _reply(update, texts.customer_text(customer.language, "new_ticket"))


async def human(update: Update, context: KefuContext) -> None:
    customer = await current_customer(update, context)
    services = context.services
    async with services.session() as session:
        ticket = await conversation.request_human(
            session, customer_id=customer.id, now=services.now()
        )
    if ticket is None:
        await _reply(update, texts.customer_text(customer.language, "human_no_ticket"))
        return
    await _reply(
        update, texts.customer_text(customer.language, "human_escalated", number=ticket.number)
    )
    place = relay.StaffPlace.of(ticket)
    if place is None:  # answered automatically so far: the agents have not seen it yet
        await escalate_to_staff(context, ticket.id, customer.id)
        return
    await relay.post_to_place(
        context.bot, place, texts.staff_text("escalated", number=ticket.number)
    )


async def language(update: Update, context: KefuContext) -> None:
    customer = await current_customer(update, context)
    await _reply(
        update,
        texts.customer_text(customer.language, "language_choose"),
        reply_markup=keyboards.languages(),
    )


async def language_chosen(update: Update, context: KefuContext) -> None:
    query = update.callback_query
    assert query is not None  # noqa: S101
    callback = keyboards.Callback.parse(query.data)
    code = callback.args[0] if callback and callback.args else ""
    customer = await current_customer(update, context)
    async with context.services.session() as session:
        row = await customers.set_language(session, customer_id=customer.id, language=code)
        chosen = row.language
    await query.answer()
    await _reply(update, texts.customer_text(chosen, "language_set"))


async def message(update: Update, context: KefuContext) -> None:
    """Any customer message: stored first, then routed to a ticket and relayed to the agents."""
    msg, user = update.effective_message, update.effective_user
    assert msg is not None and user is not None  # noqa: S101
    services = context.services
    data = incoming(msg, user)
    async with services.session() as session:  # stored before anything else happens to it
        _, message_id = await conversation.store_incoming(
            session,
            incoming=data,
            now=services.now(),
            default_language=services.settings.default_language,
        )
    async with services.session() as session:
        routed = await conversation.route_incoming(
            session,
            message_id=message_id,
            reply_to_message_id=data.reply_to_message_id,
            now=services.now(),
        )
    if routed.kind == RouteKind.RATING_COMMENT:
        await _rating_comment(update, context, routed)
        return
    understood = await understanding.understand(services, routed)
    if routed.kind == RouteKind.NEW_TICKET:
        await _new_ticket(update, context, routed, understood)
    else:
        await _follow_up(update, context, routed, understood)


async def _new_ticket(
    update: Update, context: KefuContext, routed: Routed, understood: Understood | None
) -> None:
    """Answer from the knowledge base when confident; otherwise acknowledge and escalate."""
    services = context.services
    number = routed.ticket.number
    language = understanding.reply_language(routed.customer.language, understood)
    answer = understanding.automatic_answer(services, understood, language)
    if answer is not None:
        async with services.session() as session:
            await conversation.auto_answer(
                session, ticket_id=routed.ticket.id, text=answer, now=services.now()
            )
        text = texts.customer_text(language, "auto_answer", number=number, answer=answer)
        await _reply(update, text, reply_markup=keyboards.solved(routed.ticket.id, language))
        return
    now = services.now()
    opening = None
    if not services.hours.is_open(now):
        opening = texts.format_local(services.hours.next_opening(now), services.settings.tz)
    await _reply(update, texts.ack_new_ticket(language, number, opening))
    await escalate_to_staff(context, routed.ticket.id, routed.customer.id)


async def _follow_up(
    update: Update, context: KefuContext, routed: Routed, understood: Understood | None
) -> None:
    place = relay.StaffPlace.of(routed.ticket)
    if place is None:  # answered automatically (or never shown): writing again means "not solved"
        if context.services.settings.staff_chat_id is None:
            return
        language = understanding.reply_language(routed.customer.language, understood)
        reply = texts.customer_text(language, "escalated_after_answer", number=routed.ticket.number)
        await _reply(update, reply)
        await escalate_to_staff(context, routed.ticket.id, routed.customer.id)
        return
    async with context.services.staff.posting():
        await _relay_to_staff(context, routed.customer, routed.ticket.number, routed.message, place)
    if understood is not None and understood.changed:
        await _refresh_card(context, routed.ticket.id, routed.customer.id)


async def escalate_to_staff(context: KefuContext, ticket_id: int, customer_id: int) -> None:
    """Hand the ticket to the agents: its topic or card, then every message they have not seen."""
    services = context.services
    async with services.session() as session:
        action = await conversation.hand_to_agents(session, ticket_id=ticket_id, now=services.now())
        unseen = await conversation.unseen_by_agents(session, ticket_id=ticket_id)
    card = await understanding.fresh_card(services, ticket_id)
    record = await services.customer_record(customer_id)
    async with services.staff.posting():
        place = await relay.open_in_staff_chat(services, context.bot, card, record)
        if place is None:
            return
        async with services.session() as session:
            await tickets.set_staff_refs(
                session,
                ticket_id=ticket_id,
                chat_id=place.chat_id,
                thread_id=place.thread_id,
                card_message_id=place.card_message_id,
            )
        for message_info in unseen:
            await _relay_to_staff(
                context, action.customer, action.ticket.number, message_info, place
            )


async def _refresh_card(context: KefuContext, ticket_id: int, customer_id: int) -> None:
    card = await understanding.fresh_card(context.services, ticket_id)
    record = await context.services.customer_record(customer_id)
    await relay.refresh_card(context.services, context.bot, card, record)


async def _relay_to_staff(
    context: KefuContext,
    customer: CustomerInfo,
    number: int,
    message_info: MessageInfo,
    place: relay.StaffPlace,
) -> None:
    staff_message_id = await relay.customer_to_staff(
        context.bot, place, customer, number, message_info
    )
    async with context.services.session() as session:
        await conversation.record_staff_copy(
            session,
            message_id=message_info.id,
            staff_chat_id=place.chat_id,
            staff_message_id=staff_message_id,
        )


async def _rating_comment(update: Update, context: KefuContext, routed: Routed) -> None:
    await _reply(update, texts.customer_text(routed.customer.language, "comment_thanks"))
    place = relay.StaffPlace.of(routed.ticket)
    if place is not None:
        await relay.post_to_place(
            context.bot,
            place,
            texts.staff_text(
                "rating_comment", number=routed.ticket.number, comment=routed.message.text
            ),
        )


async def rate(update: Update, context: KefuContext) -> None:
    """A tap on one of the five rating buttons: stored once, then a comment is invited."""
    query = update.callback_query
    assert query is not None and query.message is not None  # noqa: S101
    callback = keyboards.Callback.parse(query.data)
    ticket_id = callback.int_arg(0) if callback else None
    score = callback.int_arg(1) if callback else None
    customer = await current_customer(update, context)
    services = context.services
    async with services.session() as session:
        given = await conversation.rate(
            session,
            ticket_id=ticket_id or 0,
            customer_id=customer.id,
            score=score or 0,
            now=services.now(),
        )
    await query.answer(texts.customer_text(customer.language, "rated", score=given.score))
    await _reply(update, texts.customer_text(customer.language, "rated", score=given.score))
    invite = await context.bot.send_message(
        query.message.chat.id,
        texts.customer_text(customer.language, "comment_invite"),
        parse_mode=ParseMode.HTML,
        reply_markup=ForceReply(selective=True),
    )
    async with services.session() as session:
        await conversation.set_comment_prompt(
            session, rating_id=given.rating_id, message_id=invite.message_id
        )
    place = relay.StaffPlace.of(given.ticket)
    if place is not None:
        await relay.post_to_place(
            context.bot,
            place,
            texts.staff_text(
                "rating",
                number=given.ticket.number,
                stars=texts.stars(given.score),
                score=given.score,
            ),
        )


async def solved(update: Update, context: KefuContext) -> None:
    """Yes / No under an automatic answer: resolved as self-served, or handed to the agents."""
    query = update.callback_query
    assert query is not None  # noqa: S101
    callback = keyboards.Callback.parse(query.data)
    ticket_id = (callback.int_arg(0) if callback else None) or 0
    said_yes = callback is not None and callback.args[1:2] == (keyboards.YES,)
    customer = await current_customer(update, context)
    language = (
        callback.args[2] if callback and len(callback.args) > 2 else ""
    ) or customer.language
    services = context.services
    if said_yes:
        async with services.session() as session:
            ticket = await conversation.self_served(
                session, ticket_id=ticket_id, customer_id=customer.id, now=services.now()
            )
        reply = texts.customer_text(language, "self_served", number=ticket.number)
    else:
        async with services.session() as session:
            action = await conversation.escalate(
                session, ticket_id=ticket_id, customer_id=customer.id, now=services.now()
            )
        reply = texts.customer_text(language, "escalated_after_answer", number=action.ticket.number)
    await query.answer()
    await query.edit_message_reply_markup(reply_markup=None)
    await _reply(update, reply)
    if not said_yes:
        await escalate_to_staff(context, ticket_id, customer.id)
