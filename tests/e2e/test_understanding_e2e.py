"""Understanding in the conversation end to end: automatic answers, analysis, corrections."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from crm.models import CategoryCorrection, Message, Resolution, Ticket, TicketStatus
from tests.e2e.conftest import Kefu, settle, wait_text
from tests.fakebotapi import FakeBotAPI


async def ticket(kefu: Kefu, number: int = 1001) -> Ticket:
    async with kefu.services.session() as session:
        return (await session.execute(select(Ticket).where(Ticket.number == number))).scalar_one()


async def test_automatic_answer_yes_resolves_self_served(api: FakeBotAPI, start_kefu: Any) -> None:
    agent = api.add_user("Alice")
    customer = api.add_user("Bob")
    staff = api.add_supergroup("Support", members=[agent])
    async with start_kefu(
        staff_chat_id=staff["id"], agent_ids=[agent["id"]], auto_answer=True
    ) as kefu:
        api.user_sends_text(customer, "How do I reset my password? I forgot it")
        answer = await wait_text(api, customer["id"], "Did this solve it?")
        assert answer["text"].startswith("🎫 #1001\nTo reset your password")
        buttons = [
            b["callback_data"] for row in answer["reply_markup"]["inline_keyboard"] for b in row
        ]
        assert buttons == ["solved:1:yes:en", "solved:1:no:en"]
        api.user_taps_button(customer, answer, "solved:1:yes:en")
        await wait_text(api, customer["id"], "glad that helped")
        await settle(api)
        assert "reply_markup" not in api.message(customer["id"], answer["message_id"])
        assert api.messages_in(staff["id"]) == []  # agents never had to look at it
        row = await ticket(kefu)
        assert (row.status, row.resolution, row.escalated_at) == (
            TicketStatus.RESOLVED,
            Resolution.SELF_SERVED,
            None,
        )
        assert row.category == "account"
        async with kefu.services.session() as session:
            bot_answers = (
                await session.scalars(select(Message.text).where(Message.author_kind == "bot"))
            ).all()
        assert len(bot_answers) == 1 and bot_answers[0].startswith("To reset your password")


async def test_automatic_answer_no_escalates_with_the_analysis(
    api: FakeBotAPI, start_kefu: Any
) -> None:
    agent = api.add_user("Alice")
    customer = api.add_user("Chen", language_code="en")
    staff = api.add_supergroup("Support", members=[agent])
    async with start_kefu(
        staff_chat_id=staff["id"], agent_ids=[agent["id"]], auto_answer=True
    ) as kefu:
        api.user_sends_text(customer, "怎么重置密码？我忘记密码了")
        answer = await wait_text(api, customer["id"], "这解决您的问题了吗")  # answered in Chinese
        assert "重置密码" in answer["text"]
        api.user_taps_button(customer, answer, "solved:1:no:zh")
        await wait_text(api, customer["id"], "已转给我们的客服")
        card = await wait_text(api, staff["id"], "Ticket #1001")
        assert "🏷 Account" in card["text"]
        assert "Sentiment" in card["text"] and "urgency normal" in card["text"]
        await wait_text(api, staff["id"], "💬 Chen · #1001\n怎么重置密码？我忘记密码了")
        row = await ticket(kefu)
        assert row.status == TicketStatus.ESCALATED and row.escalated_at is not None


async def test_follow_up_after_answer_goes_to_agents(api: FakeBotAPI, start_kefu: Any) -> None:
    agent = api.add_user("Alice")
    customer = api.add_user("Bob")
    staff = api.add_supergroup("Support", is_forum=True, members=[agent])
    async with start_kefu(
        staff_chat_id=staff["id"], agent_ids=[agent["id"]], auto_answer=True
    ) as kefu:
        api.user_sends_text(customer, "Where is my parcel? Order AB-123456")
        answer = await wait_text(api, customer["id"], "Did this solve it?")
        api.user_sends_text(customer, "It says delivered but I have nothing")
        await wait_text(api, customer["id"], "now with our team")
        await api.wait_for(lambda: len(api.topics(staff["id"])) == 1)
        thread = api.topics(staff["id"])[0]["message_thread_id"]
        card = await wait_text(api, staff["id"], "Ticket #1001", thread_id=thread)
        assert "ORDER AB-123456" in card["text"]
        await wait_text(api, staff["id"], "Bob · #1001\nWhere is my parcel?", thread_id=thread)
        await wait_text(api, staff["id"], "Bob · #1001\nIt says delivered", thread_id=thread)
        # The late "Yes" cannot close a ticket that agents now own.
        query = api.user_taps_button(customer, answer, "solved:1:yes:en")
        await api.wait_for(lambda: query in api.callback_answers)
        assert "already have your answer" in api.callback_answers[query]["text"]
        row = await ticket(kefu)
        assert (row.status, row.resolution) == (TicketStatus.OPEN, None)
        assert row.escalated_at is not None  # counted as escalated, not self-served


async def test_urgent_complaint_goes_straight_to_agents_with_masked_card(
    api: FakeBotAPI, start_kefu: Any
) -> None:
    agent = api.add_user("Alice")
    customer = api.add_user("Bob")
    staff = api.add_supergroup("Support", members=[agent])
    async with start_kefu(
        staff_chat_id=staff["id"], agent_ids=[agent["id"]], auto_answer=True
    ) as kefu:
        api.user_sends_text(
            customer,
            "THIS IS UNACCEPTABLE, I WILL SUE YOU. My card 4111 1111 1111 1111 was charged twice!",
        )
        ack = await wait_text(api, customer["id"], "#1001")
        assert "opened ticket #1001" in ack["text"]
        card = await wait_text(api, staff["id"], "Ticket #1001")
        assert "🔴 urgent" in card["text"]
        assert "urgency high" in card["text"]
        assert "CARD •••• 1111" in card["text"]
        assert "4111 1111 1111 1111" not in card["text"]
        row = await ticket(kefu)
        assert (row.priority, row.urgency, row.sentiment) == (1, "high", "negative")


async def test_agent_corrects_the_category(api: FakeBotAPI, start_kefu: Any) -> None:
    agent = api.add_user("Alice")
    intruder = api.add_user("Mallory")
    customer = api.add_user("Bob")
    staff = api.add_supergroup("Support", members=[agent, intruder])
    async with start_kefu(staff_chat_id=staff["id"], agent_ids=[agent["id"]]) as kefu:
        api.user_sends_text(customer, "I was charged twice for my subscription")
        card = await wait_text(api, staff["id"], "Ticket #1001")
        assert "🏷 Billing" in card["text"]
        api.user_taps_button(agent, card, "cats:1")
        await api.wait_for(
            lambda: any(
                b.get("callback_data") == "cat:1:cancellation"
                for row in api.message(staff["id"], card["message_id"])["reply_markup"][
                    "inline_keyboard"
                ]
                for b in row
            )
        )
        chooser = api.message(staff["id"], card["message_id"])
        refused = api.user_taps_button(intruder, chooser, "cat:1:cancellation")
        await api.wait_for(lambda: refused in api.callback_answers)
        assert api.callback_answers[refused]["text"] == "Only agents can do this."
        api.user_taps_button(agent, chooser, "cat:1:cancellation")
        await wait_text(api, staff["id"], "set the category of #1001 to Cancellation")
        await api.wait_for(
            lambda: "🏷 Cancellation" in api.message(staff["id"], card["message_id"])["text"]
        )
        # The command does the same, replying to the card.
        api.user_sends_text(
            agent, "/category billing", chat_id=staff["id"], reply_to_message_id=card["message_id"]
        )
        await wait_text(api, staff["id"], "to Billing")
        api.user_sends_text(
            agent, "/category nonsense", chat_id=staff["id"], reply_to_message_id=card["message_id"]
        )
        unknown = await wait_text(api, staff["id"], "Unknown category")
        assert "cancellation" in unknown["text"]
        await settle(api)
        async with kefu.services.session() as session:
            rows = (
                await session.execute(
                    select(
                        CategoryCorrection.previous_category,
                        CategoryCorrection.category,
                        CategoryCorrection.text,
                    ).order_by(CategoryCorrection.id)
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            ("billing", "cancellation", "I was charged twice for my subscription"),
            ("cancellation", "billing", "I was charged twice for my subscription"),
        ]
        assert (await ticket(kefu)).category == "billing"
