"""The customer conversation loop end to end: real PTB Application <-> fake Bot API over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from crm.models import Customer, InboxUpdate, Message, Rating, Ticket, TicketStatus
from crm.support import flows
from tests.e2e.conftest import Kefu, settle, texts_of, wait_text
from tests.fakebotapi import JSON, FakeBotAPI


def staff_group(
    api: FakeBotAPI, *, forum: bool, agents: list[JSON], others: tuple[JSON, ...] = ()
) -> JSON:
    return api.add_supergroup("Support team", is_forum=forum, members=[*agents, *others])


async def count(kefu: Kefu, column: Any, *where: Any) -> int:
    async with kefu.services.session() as session:
        return int(await session.scalar(select(func.count(column)).where(*where)) or 0)


async def ticket_row(kefu: Kefu, number: int) -> Ticket:
    async with kefu.services.session() as session:
        return (await session.execute(select(Ticket).where(Ticket.number == number))).scalar_one()


async def test_new_customer_plain_group_full_loop(api: FakeBotAPI, start_kefu: Any) -> None:
    agent = api.add_user("Alice", username="alice_agent")
    customer = api.add_user("Bob", username="bob", language_code="en")
    staff = staff_group(api, forum=False, agents=[agent])
    async with start_kefu(staff_chat_id=staff["id"], agent_ids=[agent["id"]]) as kefu:
        api.user_sends_text(customer, "My order has not arrived")
        ack = await wait_text(api, customer["id"], "#1001")
        assert "opened ticket #1001" in ack["text"]

        # The card and the relayed message appear in the staff chat.
        card = await wait_text(api, staff["id"], "Ticket #1001")
        assert (
            "Bob" in card["text"] and "@bob" in card["text"] and str(customer["id"]) in card["text"]
        )
        assert "First ticket from this customer" in card["text"]
        buttons = [b["text"] for row in card["reply_markup"]["inline_keyboard"] for b in row]
        assert buttons == ["🙋 Claim", "✅ Resolve", "🏷 Category"]
        relayed = await wait_text(api, staff["id"], "💬 Bob · #1001\nMy order has not arrived")
        assert relayed["reply_to_message"]["message_id"] == card["message_id"]

        # A follow-up lands in the same thread (as a reply to the card).
        api.user_sends_text(customer, "It was order AB-123456")
        follow = await wait_text(api, staff["id"], "💬 Bob · #1001\nIt was order AB-123456")
        assert follow["reply_to_message"]["message_id"] == card["message_id"]
        assert await count(kefu, Ticket.id) == 1

        # An agent's reply to the relayed message reaches the customer; first response recorded.
        api.user_sends_text(
            agent,
            "Sorry Bob, checking it now",
            chat_id=staff["id"],
            reply_to_message_id=relayed["message_id"],
        )
        answer = await wait_text(api, customer["id"], "checking it now")
        assert answer["text"] == "Sorry Bob, checking it now"
        await settle(api)
        row = await ticket_row(kefu, 1001)
        assert row.first_response_at is not None
        assert row.status == TicketStatus.PENDING

        # A photo from the agent, as a reply to the card, is copied to the customer.
        api.user_sends_photo(
            agent,
            caption="Here is the label",
            chat_id=staff["id"],
            reply_to_message_id=card["message_id"],
        )
        photo = await wait_text(api, customer["id"], "Here is the label")
        assert "photo" in photo

        # Resolve by button: the customer is thanked and gets exactly five rating buttons 1..5.
        api.user_taps_button(agent, api.message(staff["id"], card["message_id"]), "resolve:1")
        rating_prompt = await wait_text(api, customer["id"], "has been resolved")
        keyboard = rating_prompt["reply_markup"]["inline_keyboard"]
        assert len(keyboard) == 1
        assert [b["callback_data"] for b in keyboard[0]] == [f"rate:1:{n}" for n in range(1, 6)]
        assert [b["text"][0] for b in keyboard[0]] == ["1", "2", "3", "4", "5"]
        await wait_text(api, staff["id"], "resolved by Alice")

        # A tap stores the rating once; a later tap is told it was already rated.
        first_tap = api.user_taps_button(customer, rating_prompt, "rate:1:4")
        invite = await wait_text(api, customer["id"], "Reply to this message with a comment")
        invite_request = next(
            params
            for method, params in api.requests
            if method == "sendMessage" and "with a comment" in str(params.get("text"))
        )
        assert invite_request["reply_markup"]["force_reply"] is True
        await wait_text(api, staff["id"], "Rating for #1001")
        assert "4/5" in api.callback_answers[first_tap].get("text", "")
        second_tap = api.user_taps_button(customer, rating_prompt, "rate:1:1")
        await api.wait_for(lambda: second_tap in api.callback_answers)
        assert "already rated" in api.callback_answers[second_tap]["text"]
        assert await count(kefu, Rating.id) == 1
        async with kefu.services.session() as session:
            assert await session.scalar(select(Rating.score)) == 4

        # The optional comment, as a reply to the invitation, shows in the staff thread.
        api.user_sends_text(
            customer, "Quick and friendly", reply_to_message_id=invite["message_id"]
        )
        await wait_text(api, staff["id"], "Quick and friendly")
        await wait_text(api, customer["id"], "passed your comment")
        async with kefu.services.session() as session:
            assert await session.scalar(select(Rating.comment)) == "Quick and friendly"

        # The next message after resolution opens a new ticket, whose card shows the history.
        api.user_sends_text(customer, "Another question")
        await wait_text(api, customer["id"], "#1002")
        card2 = await wait_text(api, staff["id"], "Ticket #1002")
        assert "#1001" in card2["text"] and "★★★★☆" in card2["text"]
        assert await count(kefu, Ticket.id) == 2


async def test_forum_topics(api: FakeBotAPI, start_kefu: Any) -> None:
    agent = api.add_user("Alice")
    customer = api.add_user("Chen", language_code="zh-hans")
    staff = staff_group(api, forum=True, agents=[agent])
    async with start_kefu(
        staff_chat_id=staff["id"], agent_ids=[agent["id"]], agent_signature=True
    ) as kefu:
        api.user_sends_text(customer, "我的订单还没到")
        ack = await wait_text(api, customer["id"], "#1001")
        assert "工单" in ack["text"]
        await api.wait_for(lambda: len(api.topics(staff["id"])) == 1)
        topic = api.topics(staff["id"])[0]
        assert topic["name"] == "#1001 · Chen"
        thread = topic["message_thread_id"]
        card = await wait_text(api, staff["id"], "Ticket #1001", thread_id=thread)
        assert "简体中文" in card["text"]
        await wait_text(api, staff["id"], "💬 Chen · #1001\n我的订单还没到", thread_id=thread)

        # Follow-ups land in the same topic, including media.
        api.user_sends_photo(customer, caption="照片")
        await wait_text(api, staff["id"], "照片", thread_id=thread)
        api.user_sends_sticker(customer)
        await api.wait_for(
            lambda: any("sticker" in m for m in api.messages_in(staff["id"], thread_id=thread))
        )

        # What an agent writes in the topic reaches the customer, signed (a setting).
        api.user_sends_text(agent, "正在查询", chat_id=staff["id"], message_thread_id=thread)
        reply = await wait_text(api, customer["id"], "正在查询")
        assert reply["text"] == "正在查询\n\n— Alice"
        api.user_sends_document(
            agent,
            "invoice.pdf",
            b"%PDF-1.4 fake",
            "application/pdf",
            chat_id=staff["id"],
            message_thread_id=thread,
        )
        await api.wait_for(lambda: any("document" in m for m in api.messages_in(customer["id"])))

        # Commands inside the topic.
        api.user_sends_text(
            agent, "/note VIP customer, be gentle", chat_id=staff["id"], message_thread_id=thread
        )
        await wait_text(api, staff["id"], "Note saved on #1001", thread_id=thread)
        api.user_sends_text(agent, "/claim", chat_id=staff["id"], message_thread_id=thread)
        await wait_text(api, staff["id"], "Alice claimed ticket #1001", thread_id=thread)
        await api.wait_for(
            lambda: "Assigned to Alice" in api.message(staff["id"], card["message_id"])["text"]
        )
        api.user_sends_text(agent, "/resolve", chat_id=staff["id"], message_thread_id=thread)
        await wait_text(api, customer["id"], "已解决")
        api.user_sends_text(agent, "/reopen", chat_id=staff["id"], message_thread_id=thread)
        await wait_text(api, staff["id"], "reopened by Alice", thread_id=thread)
        await settle(api)
        assert all("VIP customer" not in t for t in texts_of(api.messages_in(customer["id"])))
        row = await ticket_row(kefu, 1001)
        assert (row.status, row.reopened_count) == (TicketStatus.OPEN, 1)
        assert await count(kefu, Message.id, Message.direction == "internal") == 1


async def test_non_agents_are_refused_and_other_groups_ignored(
    api: FakeBotAPI, start_kefu: Any
) -> None:
    agent = api.add_user("Alice")
    intruder = api.add_user("Mallory")
    customer = api.add_user("Bob")
    staff = staff_group(api, forum=False, agents=[agent], others=(intruder,))
    other = api.add_supergroup("Random group", members=[customer])
    async with start_kefu(staff_chat_id=staff["id"], agent_ids=[agent["id"]]) as kefu:
        api.user_sends_text(customer, "help me")
        card = await wait_text(api, staff["id"], "Ticket #1001")
        query = api.user_taps_button(intruder, card, "claim:1")
        await api.wait_for(lambda: query in api.callback_answers)
        assert api.callback_answers[query]["text"] == "Only agents can do this."
        assert api.callback_answers[query].get("show_alert") in (True, "true")
        api.user_sends_text(intruder, "/queue", chat_id=staff["id"])
        await wait_text(api, staff["id"], "Only agents can do this.")
        api.user_sends_text(
            intruder,
            "I am not an agent",
            chat_id=staff["id"],
            reply_to_message_id=card["message_id"],
        )
        await settle(api)
        assert texts_of(api.messages_in(customer["id"])).count("I am not an agent") == 0
        before = len(api.sent)
        api.user_sends_text(customer, "hello group", chat_id=other["id"])
        api.user_sends_text(customer, "/start", chat_id=other["id"])
        await settle(api)
        assert len(api.sent) == before
        row = await ticket_row(kefu, 1001)
        assert row.assignee_id is None

        # The agent's /queue lists the waiting ticket.
        api.user_sends_text(agent, "/queue", chat_id=staff["id"])
        queue = await wait_text(api, staff["id"], "Waiting tickets")
        assert "#1001 · Bob · open · waiting" in queue["text"]


async def test_agents_default_to_staff_chat_members(api: FakeBotAPI, start_kefu: Any) -> None:
    member = api.add_user("Member")
    outsider = api.add_user("Outsider")
    customer = api.add_user("Bob")
    staff = staff_group(api, forum=False, agents=[member], others=(outsider,))
    async with start_kefu(staff_chat_id=staff["id"]):
        api.user_sends_text(customer, "hello")
        card = await wait_text(api, staff["id"], "Ticket #1001")
        api.set_member_status(staff["id"], outsider["id"], "left")
        q = api.user_taps_button(member, card, "claim:1")
        await wait_text(api, staff["id"], "Member claimed ticket #1001")
        await api.wait_for(lambda: q in api.callback_answers)
        assert (
            "text" not in api.callback_answers[q]
            or api.callback_answers[q]["text"] != "Only agents can do this."
        )


async def test_markup_characters_in_names_and_texts(api: FakeBotAPI, start_kefu: Any) -> None:
    agent = api.add_user("Alice")
    customer = api.add_user("*_[x]<b>&", username="weird_name", last_name="`~|>#")
    staff = staff_group(api, forum=True, agents=[agent])
    async with start_kefu(staff_chat_id=staff["id"], agent_ids=[agent["id"]]):
        api.user_sends_text(customer, "/start")
        hello = await wait_text(api, customer["id"], "Hello")
        assert hello["text"].startswith("Hello, *_[x]<b>&!")
        api.user_sends_text(customer, "<i>not html</i> & *not markdown*")
        await wait_text(api, customer["id"], "#1001")
        card = await wait_text(api, staff["id"], "Ticket #1001")
        assert "*_[x]<b>& `~|>#" in card["text"]
        relayed = await wait_text(api, staff["id"], "#1001\n<i>not html</i> & *not markdown*")
        assert relayed["text"].endswith("<i>not html</i> & *not markdown*")
        assert api.topics(staff["id"])[0]["name"] == "#1001 · *_[x]<b>& `~|>#"


async def test_long_texts_are_split(api: FakeBotAPI, start_kefu: Any) -> None:
    agent = api.add_user("Alice")
    customer = api.add_user("Bob")
    staff = staff_group(api, forum=False, agents=[agent])
    long_text = " ".join(f"word{i}" for i in range(1500))  # 12,389 characters: four messages
    async with start_kefu(staff_chat_id=staff["id"], agent_ids=[agent["id"]]):
        api.user_sends_text(customer, "first")
        card = await wait_text(api, staff["id"], "Ticket #1001")
        api.user_sends_text(customer, long_text)
        await wait_text(api, staff["id"], "word1499")
        relayed = [
            m["text"] for m in api.messages_in(staff["id"]) if "word" in (m.get("text") or "")
        ]
        assert len(relayed) == 4 and all(len(t) <= 4096 for t in relayed)
        assert " ".join(relayed).split("#1001\n", 1)[1].split() == long_text.split()
        # A long (Premium) photo caption is not cut: the full text follows the photo.
        caption = "caption " + "x" * 1500 + " end-of-caption"
        api.user_sends_photo(customer, caption=caption)
        full = await wait_text(api, staff["id"], "end-of-caption")
        assert full["text"].endswith(caption)
        photo = api.message(staff["id"], full["reply_to_message"]["message_id"])
        assert "photo" in photo and photo["caption"] == "💬 Bob · #1001"
        api.user_sends_text(
            agent, long_text, chat_id=staff["id"], reply_to_message_id=card["message_id"]
        )
        await wait_text(api, customer["id"], "word1499")
        parts = [
            m["text"] for m in api.messages_in(customer["id"]) if "word" in (m.get("text") or "")
        ]
        assert len(parts) == 4 and " ".join(parts).split() == long_text.split()


async def test_customer_commands(api: FakeBotAPI, start_kefu: Any) -> None:
    agent = api.add_user("Alice")
    customer = api.add_user("Bob", language_code="en")
    staff = staff_group(api, forum=False, agents=[agent])
    async with start_kefu(staff_chat_id=staff["id"], agent_ids=[agent["id"]]) as kefu:
        api.user_sends_text(customer, "/help")
        help_text = await wait_text(api, customer["id"], "/status")
        assert "/new" in help_text["text"] and "/human" in help_text["text"]
        api.user_sends_text(customer, "/status")
        await wait_text(api, customer["id"], "no open tickets")
        api.user_sends_text(customer, "First problem")
        await wait_text(api, customer["id"], "#1001")
        api.user_sends_text(customer, "/new")
        await wait_text(api, customer["id"], "next message starts a new ticket")
        api.user_sends_text(customer, "Second problem")
        await wait_text(api, customer["id"], "#1002")
        api.user_sends_text(customer, "/status")
        status = await wait_text(api, customer["id"], "Your open tickets")
        assert "#1001" in status["text"] and "#1002" in status["text"]
        api.user_sends_text(customer, "/human")
        await wait_text(api, customer["id"], "now with a person")
        await wait_text(api, staff["id"], "asked for a person on #1002")
        row = await ticket_row(kefu, 1002)
        assert row.status == TicketStatus.ESCALATED

        api.user_sends_text(customer, "/language")
        chooser = await wait_text(api, customer["id"], "Choose your language")
        api.user_taps_button(customer, chooser, "lang:zh")
        await wait_text(api, customer["id"], "简体中文")
        api.user_sends_text(customer, "/help")
        await wait_text(api, customer["id"], "使用说明")
        async with kefu.services.session() as session:
            assert await session.scalar(select(Customer.language)) == "zh"


async def test_business_hours_in_acknowledgement(api: FakeBotAPI, start_kefu: Any) -> None:
    from datetime import UTC, datetime

    customer = api.add_user("Bob")
    staff = staff_group(api, forum=False, agents=[])
    async with start_kefu(
        staff_chat_id=staff["id"], business_hours="mon-fri 09:00-18:00", timezone="Europe/Berlin"
    ) as kefu:
        kefu.services.clock = lambda: datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # a Saturday
        api.user_sends_text(customer, "Weekend question")
        ack = await wait_text(api, customer["id"], "#1001")
        assert "away right now" in ack["text"]
        assert "Mon 30 Nov 09:00 (Europe/Berlin)" in ack["text"]


async def test_twenty_customers_at_once(api: FakeBotAPI, start_kefu: Any) -> None:
    agent = api.add_user("Alice")
    staff = staff_group(api, forum=True, agents=[agent])
    customers = [api.add_user(f"Customer {i}") for i in range(20)]
    async with start_kefu(staff_chat_id=staff["id"], agent_ids=[agent["id"]]) as kefu:
        for step in range(3):
            for c in customers:
                api.user_sends_text(c, f"{c['first_name']} message {step}")
        for c in customers:
            await wait_text(api, c["id"], "opened ticket")
        await api.wait_for(lambda: len(api.topics(staff["id"])) == 20, timeout=30)

        def relayed_count() -> int:
            return sum(t.startswith("💬") for t in texts_of(api.messages_in(staff["id"])))

        await api.wait_for(lambda: relayed_count() == 60, timeout=30)
        await settle(api)
        assert await count(kefu, Ticket.id) == 20
        async with kefu.services.session() as session:
            rows = (
                await session.execute(
                    select(Customer.first_name, Message.text, Message.ticket_id)
                    .join(Customer, Customer.id == Message.customer_id)
                    .order_by(Message.id)
                )
            ).all()
        for c in customers:
            mine = [(text, ticket) for name, text, ticket in rows if name == c["first_name"]]
            assert [t for t, _ in mine] == [f"{c['first_name']} message {s}" for s in range(3)]
            assert len({ticket for _, ticket in mine}) == 1
        # Each topic holds its own customer's messages, in order.
        for topic in api.topics(staff["id"]):
            name = topic["name"].split(" · ", 1)[1]
            relayed = [
                t.split("\n", 1)[1]
                for t in texts_of(
                    api.messages_in(staff["id"], thread_id=topic["message_thread_id"])
                )
                if t.startswith("💬")
            ]
            assert relayed == [f"{name} message {s}" for s in range(3)]


async def test_relay_failure_is_reported_to_agent(api: FakeBotAPI, start_kefu: Any) -> None:
    agent = api.add_user("Alice")
    customer = api.add_user("Bob")
    staff = staff_group(api, forum=False, agents=[agent])
    async with start_kefu(staff_chat_id=staff["id"], agent_ids=[agent["id"]]) as kefu:
        api.user_sends_text(customer, "hi")
        card = await wait_text(api, staff["id"], "Ticket #1001")
        api.user_blocks_bot(customer)
        api.user_sends_text(
            agent, "are you there?", chat_id=staff["id"], reply_to_message_id=card["message_id"]
        )
        warning = await wait_text(api, staff["id"], "Couldn't deliver")
        assert "blocked" in warning["text"]
        # The agent's message is stored even though it could not be delivered, and the ticket
        # still waits for a first response the customer actually received.
        assert await count(kefu, Message.id, Message.text == "are you there?") == 1
        row = await ticket_row(kefu, 1001)
        assert (row.first_response_at, row.status) == (None, TicketStatus.OPEN)

        # Replying to one of Kefu's notices (not a card or a customer message) gets a hint.
        notice = await wait_text(api, staff["id"], "Couldn't deliver")
        api.user_sends_text(
            agent, "hello?", chat_id=staff["id"], reply_to_message_id=notice["message_id"]
        )
        await wait_text(api, staff["id"], "Use this inside a ticket's topic")


async def test_unexpected_error_gets_apology_with_reference(
    api: FakeBotAPI, start_kefu: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = api.add_user("Bob")
    staff = staff_group(api, forum=False, agents=[])

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in a flow")

    monkeypatch.setattr(flows, "customer_wrote", broken)
    async with start_kefu(staff_chat_id=staff["id"]) as kefu:
        api.user_sends_text(customer, "hello")
        apology = await wait_text(api, customer["id"], "something went wrong")
        assert "reference" in apology["text"]
        await settle(api)
        # The update itself is kept (done, so a bug cannot loop), with its text.
        async with kefu.services.session() as session:
            rows = (await session.execute(select(InboxUpdate))).scalars().all()
        assert [r.payload["message"]["text"] for r in rows] == ["hello"]
        assert rows[0].done_at is not None


async def test_bot_api_server_error_is_retried(api: FakeBotAPI, start_kefu: Any) -> None:
    customer = api.add_user("Bob")
    staff = staff_group(api, forum=False, agents=[])
    async with start_kefu(staff_chat_id=staff["id"]):
        api.fail_next("sendMessage", "Internal Server Error", error_code=500)
        api.user_sends_text(customer, "hello")
        await wait_text(api, customer["id"], "#1001")
        await settle(api)
        acks = [t for t in texts_of(api.messages_in(customer["id"])) if "#1001" in t]
        assert len(acks) == 1
        assert "something went wrong" not in " ".join(texts_of(api.messages_in(customer["id"])))
