"""The agents' side (the staff chat): parse the update, call a flow. Nothing is sent here."""

from __future__ import annotations

from telegram import Message, Update

from bot import keyboards
from bot.handlers.customer import run, tap_data
from bot.parsing import command_argument, media_of, spot_of, tap_of, text_of
from bot.services import KefuContext
from crm.support import flows
from crm.support.flows import StaffMember


async def member_of(update: Update, context: KefuContext) -> StaffMember:
    """Who acts, and whether they may act as an agent (``KEFU_AGENT_IDS`` or chat membership)."""
    user = update.effective_user
    if user is None:
        return StaffMember(0, "", None, allowed=False)
    allowed = await context.services.staff.is_agent(context.bot, user.id)
    return StaffMember(user.id, user.first_name, user.username, allowed=allowed)


async def _settle(message: Message, context: KefuContext) -> None:
    """A reply to a card or relay whose id is still being recorded: wait for it briefly."""
    if message.reply_to_message is not None or message.is_topic_message:
        await context.services.staff.settle_postings()


async def message(update: Update, context: KefuContext) -> None:
    """An agent's message in a ticket's topic, or replying to its card or a customer message."""
    msg = update.effective_message
    assert msg is not None  # noqa: S101 - the filter passes messages only
    services = context.services
    await _settle(msg, context)
    member, spot = await member_of(update, context), spot_of(msg)
    text, media = text_of(msg), media_of(msg)
    await run(
        update,
        context,
        lambda s: flows.agent_wrote(
            s,
            desk=services.desk,
            member=member,
            spot=spot,
            text=text,
            media=media,
            now=services.now(),
        ),
    )


async def _command(update: Update, context: KefuContext, command: str) -> None:
    msg = update.effective_message
    assert msg is not None  # noqa: S101 - CommandHandler passes messages only
    services = context.services
    await _settle(msg, context)
    member, spot, argument = await member_of(update, context), spot_of(msg), command_argument(msg)
    await run(
        update,
        context,
        lambda s: flows.staff_command(
            s,
            desk=services.desk,
            member=member,
            spot=spot,
            command=command,
            argument=argument,
            now=services.now(),
        ),
    )


async def claim(update: Update, context: KefuContext) -> None:
    await _command(update, context, "claim")


async def resolve(update: Update, context: KefuContext) -> None:
    await _command(update, context, "resolve")


async def reopen(update: Update, context: KefuContext) -> None:
    await _command(update, context, "reopen")


async def note(update: Update, context: KefuContext) -> None:
    await _command(update, context, "note")


async def category(update: Update, context: KefuContext) -> None:
    """``/category NAME``: correct the ticket's category (a training example for the model)."""
    await _command(update, context, "category")


async def queue(update: Update, context: KefuContext) -> None:
    msg = update.effective_message
    assert msg is not None  # noqa: S101
    services = context.services
    member, spot = await member_of(update, context), spot_of(msg)
    await run(
        update,
        context,
        lambda s: flows.queue_asked(s, member=member, spot=spot, now=services.now()),
    )


BUTTONS = {
    keyboards.CLAIM: "claim",
    keyboards.RESOLVE: "resolve",
    keyboards.REOPEN: "reopen",
    keyboards.CATEGORIES: "categories",
    keyboards.CARD: "card",
    keyboards.CATEGORY: "category",
}


async def button(update: Update, context: KefuContext) -> None:
    """Claim / Resolve / Reopen / Category buttons on a ticket's card."""
    services = context.services
    callback = keyboards.Callback.parse(tap_data(update))
    member, tap = await member_of(update, context), tap_of(update)
    command = BUTTONS.get(callback.action, "") if callback else ""
    ticket_id = callback.int_arg(0) if callback else None
    argument = callback.args[1] if callback and len(callback.args) > 1 else ""
    query = update.callback_query
    assert query is not None and query.message is not None  # noqa: S101
    spot = flows.StaffSpot(query.message.chat.id, None, None)
    await run(
        update,
        context,
        lambda s: flows.staff_command(
            s,
            desk=services.desk,
            member=member,
            spot=spot,
            command=command,
            argument=argument,
            tap=tap,
            ticket_id=ticket_id,
            now=services.now(),
        ),
    )
