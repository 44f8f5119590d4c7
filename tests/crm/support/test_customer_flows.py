"""What happens when customers write and tap, through the flows, one transaction each.

Each test asserts the effects a flow returned, the outbox rows stored with them, and the records.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm import importer, ratings, tickets
from crm.db import session_scope
from crm.errors import (
    AlreadyAnswered,
    AlreadyRated,
    InvalidRating,
    NotRatable,
    TicketNotActive,
    TicketNotFound,
)
from crm.messages import Media
from crm.models import (
    AuthorKind,
    Customer,
    Direction,
    InboxUpdate,
    Message,
    OutboxRow,
    Rating,
    Resolution,
    Ticket,
    TicketStatus,
)
from crm.support import flows, inbox
from crm.support.outcomes import (
    AnswerButton,
    EditKeyboard,
    Keyboard,
    NotifyThread,
    OpenStaffPlace,
    Outcome,
    RefreshCard,
    RelayToStaff,
    Say,
    ToCustomer,
)
from quality.stats import BusinessHours
from tests.crm.support.harness import (
    RESET_ANSWER,
    T0,
    Support,
    person,
    tap,
    understood,
)


def ack(user_id: int, customer_id: int, number: int, opening: str | None = None) -> ToCustomer:
    return ToCustomer(
        customer_id=customer_id,
        chat_id=user_id,
        say=Say.customer("en", "ack", number=number, opening=opening),
    )


async def inbound_ids(support: Support, ticket_id: int) -> list[int]:
    return [m.id for m in await support.messages(ticket_id) if m.direction == Direction.INBOUND]


# ------------------------------------------------------------------------------ new tickets


async def test_first_message_opens_ticket_for_agents_and_follow_up_joins_it(
    support: Support,
) -> None:
    first = await support.write(1, "My parcel is late")
    ticket = (await support.all_tickets())[0]
    customer = await support.customer(1)
    [m1] = await inbound_ids(support, ticket.id)
    assert (first.ticket_id, first.ticket_number, first.duplicate) == (ticket.id, 1001, False)
    assert first.effects == [
        ack(1, customer.id, 1001),
        OpenStaffPlace(ticket_id=ticket.id),
        RelayToStaff(ticket_id=ticket.id, message_id=m1),
    ]
    assert (ticket.number, ticket.status, ticket.is_current, ticket.subject) == (
        1001,
        TicketStatus.OPEN,
        True,
        "My parcel is late",
    )
    assert ticket.escalated_at == T0  # with the agents from the start: not self-served

    later = support.tick(minutes=1)
    second = await support.write(1, "Order 12345")
    m2 = (await inbound_ids(support, ticket.id))[1]
    assert second.effects == [RelayToStaff(ticket_id=ticket.id, message_id=m2)]
    assert second.ticket_id == ticket.id
    rows = await support.messages(ticket.id)
    assert [(m.text, m.direction, m.customer_chat_id) for m in rows] == [
        ("My parcel is late", Direction.INBOUND, 1),
        ("Order 12345", Direction.INBOUND, 1),
    ]
    again = await support.ticket(ticket.id)
    assert (again.subject, again.last_customer_message_at) == ("My parcel is late", later)

    # The outbox holds exactly these effects, in order, each to its destination and lane.
    assert await support.outbox() == first.effects + second.effects
    place = f"ticket:{ticket.id}"
    assert await support.destinations() == [
        ("to_customer", "chat:1", "customer"),
        ("open_staff_place", place, "staff"),
        ("relay_to_staff", place, "staff"),
        ("relay_to_staff", place, "staff"),
    ]
    async with support.factory() as session:
        card = await tickets.card(session, ticket_id=ticket.id)
    assert card.earlier == []


async def test_media_message_is_stored_with_its_file_and_names_the_ticket(
    support: Support,
) -> None:
    outcome = await support.write(5, "", media=Media("photo", "F1", "U1"), message_id=41)
    ticket = (await support.all_tickets())[0]
    [row] = await support.messages(ticket.id)
    assert (
        row.text,
        row.media_kind,
        row.media_file_id,
        row.media_file_unique_id,
        row.customer_message_id,
        row.ticket_id,
    ) == ("", "photo", "F1", "U1", 41, ticket.id)
    assert ticket.subject == "[photo]"
    assert outcome.kinds() == ["to_customer", "open_staff_place", "relay_to_staff"]


async def test_customers_each_get_their_own_ticket(support: Support) -> None:
    a = await support.write(1, "a")
    b = await support.write(2, "b")
    rows = await support.all_tickets()
    assert [(t.id, t.number) for t in rows] == [(a.ticket_id, 1001), (b.ticket_id, 1002)]
    assert rows[0].customer_id != rows[1].customer_id
    assert [t.is_current for t in rows] == [True, True]


async def test_acknowledgement_outside_business_hours_says_when_agents_are_back(
    support: Support,
) -> None:
    hours = BusinessHours.parse("mon-fri 09:00-18:00", ZoneInfo("UTC"))
    support.now = T0.replace(hour=20)  # Monday evening
    outcome = await support.write(1, "hello?", desk=replace(support.desk, hours=hours))
    customer = await support.customer(1)
    opening = T0.replace(hour=9) + timedelta(days=1)
    assert outcome.effects[0] == ack(1, customer.id, 1001, opening=opening.isoformat())


async def test_duplicate_message_id_is_handled_once_and_writes_nothing(support: Support) -> None:
    first = await support.write(1, "hello", message_id=7)
    before = (await support.count(Message), await support.count(OutboxRow))
    customer = await support.customer(1)
    support.tick(minutes=1)
    again = await support.write(1, "hello", message_id=7)
    assert again == Outcome(duplicate=True)
    assert (await support.count(Message), await support.count(OutboxRow)) == before == (1, 3)
    assert (await support.customer(1)).last_seen_at == customer.last_seen_at == T0
    assert first.ticket_id is not None
    # The same message id in another chat is another message.
    other = await support.write(2, "hello", message_id=7)
    assert (other.duplicate, await support.count(Message)) == (False, 2)


async def test_an_update_handled_once_even_when_delivered_twice(support: Support) -> None:
    async with session_scope(support.factory) as session:
        assert await inbox.store(session, updates=[{"update_id": 31}], now=T0) == [31]
    calls: list[int] = []

    async def flow(session: AsyncSession) -> Outcome:
        calls.append(1)
        return await flows.customer_wrote(
            session,
            desk=support.desk,
            incoming=flows.CustomerMessage(person=person(1), text="hi", message_id=1),
            understood=None,
            now=T0,
        )

    done = await support.runner.run(flow, update_id=31)
    again = await support.runner.run(flow, update_id=31)
    assert (done.duplicate, done.kinds()) == (
        False,
        ["to_customer", "open_staff_place", "relay_to_staff"],
    )
    assert (again, calls) == (Outcome(duplicate=True), [1])
    [update] = await support.read(select(InboxUpdate))
    assert (update.update_id, update.done_at) == (31, T0)
    assert await support.count(OutboxRow) == 3


async def test_a_refused_flow_leaves_no_trace(support: Support) -> None:
    """One transaction: the customer row the flow began with is rolled back with the refusal."""
    with pytest.raises(NotRatable):
        await support.rate(9, ticket_id=12345, score=5)
    assert (await support.count(Customer), await support.count(OutboxRow)) == (0, 0)


async def test_first_contact_links_the_customer_to_an_imported_record(
    support: Support, tmp_path: Path
) -> None:
    path = tmp_path / "records.csv"
    path.write_text("external_id,name,telegram\nR5,Uma Record,@uma_shop\n", encoding="utf-8")
    async with session_scope(support.factory) as session:
        report = await importer.import_customers(session, path=path, now=T0)
    assert (report.imported, report.error_count) == (1, 0)

    outcome = await support.write(720, "where is my order?", username="Uma_Shop")
    [record] = await support.read(select(Customer))  # merged: one customer, the imported one
    assert (record.external_id, record.telegram_user_id, record.telegram_username) == (
        "R5",
        720,
        "Uma_Shop",
    )
    ticket = await support.ticket(outcome.ticket_id or 0)
    [message] = await support.messages(ticket.id)
    assert (ticket.customer_id, message.customer_id) == (record.id, record.id)
    assert outcome.effects[0] == ack(720, record.id, 1001)


# ------------------------------------------------------------------------------ automatic answers


async def test_automatic_answer_waits_for_the_verdict_without_agents(support: Support) -> None:
    outcome = await support.write(
        1, "how do I reset my password", understanding=understood("account_login", 0.9)
    )
    ticket = (await support.all_tickets())[0]
    customer = await support.customer(1)
    say = Say.customer("en", "auto_answer", number=1001, answer=RESET_ANSWER)
    assert outcome.effects == [
        ToCustomer(
            customer_id=customer.id,
            chat_id=1,
            say=say,
            keyboard=Keyboard("solved", (ticket.id, "en")),
        )
    ]
    assert (ticket.status, ticket.escalated_at, ticket.first_response_at) == (
        TicketStatus.PENDING,
        None,
        None,
    )
    rows = await support.messages(ticket.id)
    assert [(m.direction, m.author_kind, m.text) for m in rows] == [
        (Direction.INBOUND, AuthorKind.CUSTOMER, "how do I reset my password"),
        (Direction.OUTBOUND, AuthorKind.BOT, RESET_ANSWER),
    ]
    assert await support.destinations() == [("to_customer", "chat:1", "customer")]
    async with support.factory() as session:
        assert await flows.latest_automatic_answer(session, telegram_user_id=1) == ticket.id


async def test_automatic_answer_in_the_language_written_in_or_not_at_all(support: Support) -> None:
    zh = await support.write(
        1, "我忘记密码了", understanding=understood("account_login", 0.9, language="zh")
    )
    assert [e.say for e in zh.effects if isinstance(e, ToCustomer)] == [
        Say.customer("zh", "auto_answer", number=1001, answer="请使用登录页上的重置链接。")
    ]
    off = replace(support.desk, auto_answer=False)
    quiet = await support.write(
        2, "reset?", understanding=understood("account_login", 0.9), desk=off
    )
    unsure = await support.write(3, "reset?", understanding=understood("account_login", 0.4))
    urgent = await support.write(
        4, "RESET NOW", understanding=understood("account_login", 0.9, urgency="high")
    )
    for outcome in (quiet, unsure, urgent):
        assert outcome.kinds() == ["to_customer", "open_staff_place", "relay_to_staff"]
    statuses = [t.status for t in await support.all_tickets()]
    assert statuses == [
        TicketStatus.PENDING,
        TicketStatus.OPEN,
        TicketStatus.OPEN,
        TicketStatus.OPEN,
    ]


async def test_writing_again_after_an_automatic_answer_hands_everything_to_agents(
    support: Support,
) -> None:
    await support.write(
        1, "how do I reset my password", understanding=understood("account_login", 0.9)
    )
    support.tick(minutes=2)
    outcome = await support.write(1, "that link does not work")
    ticket = (await support.all_tickets())[0]
    customer = await support.customer(1)
    m1, m2 = await inbound_ids(support, ticket.id)
    assert outcome.effects == [
        ToCustomer(
            customer_id=customer.id,
            chat_id=1,
            say=Say.customer("en", "escalated_after_answer", number=1001),
        ),
        OpenStaffPlace(ticket_id=ticket.id),
        RelayToStaff(ticket_id=ticket.id, message_id=m1),
        RelayToStaff(ticket_id=ticket.id, message_id=m2),
    ]
    assert (ticket.escalated_at, ticket.status, ticket.is_current) == (
        T0 + timedelta(minutes=2),
        TicketStatus.OPEN,
        True,
    )
    # From now on a message goes straight to the agents.
    support.tick(minutes=1)
    third = await support.write(1, "hello?")
    m3 = (await inbound_ids(support, ticket.id))[2]
    assert third.effects == [RelayToStaff(ticket_id=ticket.id, message_id=m3)]
    # The answer's buttons still name the ticket; the flow refuses a late verdict.
    async with support.factory() as session:
        assert await flows.latest_automatic_answer(session, telegram_user_id=1) == ticket.id


async def test_verdict_yes_resolves_self_served_and_no_hands_to_agents(support: Support) -> None:
    question = understood("account_login", 0.9)
    helped = await support.write(1, "how do I reset my password", understanding=question)
    unhelped = await support.write(2, "how do I reset my password", understanding=question)
    helped_id, unhelped_id = helped.ticket_id or 0, unhelped.ticket_id or 0
    with pytest.raises(TicketNotFound):  # one customer cannot close another's ticket
        await support.verdict(2, helped_id, solved=True)

    support.tick(minutes=3)
    yes = await support.verdict(1, helped_id, solved=True)
    one, two = await support.customer(1), await support.customer(2)
    assert yes.effects == [
        AnswerButton(callback_query_id=tap(1).callback_query_id),
        EditKeyboard(chat_id=1, message_id=555),
        ToCustomer(
            customer_id=one.id, chat_id=1, say=Say.customer("en", "self_served", number=1001)
        ),
    ]
    done = await support.ticket(helped_id)
    assert (done.status, done.resolution, done.resolved_at, done.is_current) == (
        TicketStatus.RESOLVED,
        Resolution.SELF_SERVED,
        T0 + timedelta(minutes=3),
        False,
    )

    no = await support.verdict(2, unhelped_id, solved=False)
    [m] = await inbound_ids(support, unhelped_id)
    assert no.effects == [
        AnswerButton(callback_query_id=tap(2).callback_query_id),
        EditKeyboard(chat_id=2, message_id=555),
        ToCustomer(
            customer_id=two.id,
            chat_id=2,
            say=Say.customer("en", "escalated_after_answer", number=1002),
        ),
        OpenStaffPlace(ticket_id=unhelped_id),
        RelayToStaff(ticket_id=unhelped_id, message_id=m),
    ]
    escalated = await support.ticket(unhelped_id)
    assert (escalated.status, escalated.first_response_at, escalated.escalated_at) == (
        TicketStatus.ESCALATED,
        None,
        T0 + timedelta(minutes=3),
    )

    rows = await support.count(OutboxRow)
    with pytest.raises(AlreadyAnswered):
        await support.verdict(1, helped_id, solved=True)
    with pytest.raises(TicketNotActive):  # "No" once it is solved: "that ticket is closed"
        await support.verdict(1, helped_id, solved=False)
    for solved in (True, False):
        with pytest.raises(AlreadyAnswered):
            await support.verdict(2, unhelped_id, solved=solved)
    assert await support.count(OutboxRow) == rows  # a refused tap leaves nothing to send


# ------------------------------------------------------------------------------ ratings


async def test_after_resolution_the_next_message_opens_a_new_ticket_and_rating_is_once(
    support: Support,
) -> None:
    first = await support.write(1, "help")
    ticket_id = first.ticket_id or 0
    customer = await support.customer(1)
    support.tick(hours=1)
    resolved = await support.staff("resolve", ticket_id=ticket_id)
    assert resolved.effects[0] == ToCustomer(
        customer_id=customer.id,
        chat_id=1,
        say=Say.customer("en", "resolved", number=1001),
        keyboard=Keyboard("rating", (ticket_id,)),
    )
    done = await support.ticket(ticket_id)
    assert (done.status, done.resolved_at, done.is_current) == (
        TicketStatus.RESOLVED,
        T0 + timedelta(hours=1),
        False,
    )

    given = await support.rate(1, ticket_id, 4)
    [rating] = await support.ratings()
    thanks = Say.customer("en", "rated", score=4)
    assert given.effects == [
        AnswerButton(callback_query_id=tap(1).callback_query_id, say=thanks),
        ToCustomer(customer_id=customer.id, chat_id=1, say=thanks),
        ToCustomer(
            customer_id=customer.id,
            chat_id=1,
            say=Say.customer("en", "comment_invite"),
            keyboard=Keyboard("force_reply"),
            remember="rating_prompt",
            remember_id=rating.id,
        ),
        NotifyThread(ticket_id=ticket_id, say=Say.staff("rating", number=1001, score=4)),
    ]
    assert (rating.ticket_id, rating.customer_id, rating.score) == (ticket_id, customer.id, 4)
    rows = await support.count(OutboxRow)
    with pytest.raises(AlreadyRated):
        await support.rate(1, ticket_id, 1)
    assert (await support.count(Rating), await support.count(OutboxRow)) == (1, rows)

    support.tick(hours=1)
    again = await support.write(1, "new problem")
    assert (again.ticket_number, again.kinds()) == (
        1002,
        ["to_customer", "open_staff_place", "relay_to_staff"],
    )
    async with support.factory() as session:
        card = await tickets.card(session, ticket_id=again.ticket_id or 0)
    assert [(p.number, p.rating) for p in card.earlier] == [(1001, 4)]


async def test_rating_rules(support: Support) -> None:
    mine = await support.write(1, "mine")
    other = await support.write(2, "other")
    await support.staff("resolve", ticket_id=mine.ticket_id)
    with pytest.raises(InvalidRating):
        await support.rate(1, mine.ticket_id or 0, 6)
    with pytest.raises(NotRatable):  # one customer never rates another's ticket
        await support.rate(2, mine.ticket_id or 0, 5)
    with pytest.raises(NotRatable):  # not resolved yet
        await support.rate(2, other.ticket_id or 0, 5)
    assert await support.count(Rating) == 0


async def test_rating_comment_by_replying_to_the_invitation(support: Support) -> None:
    routed = await support.write(1, "x")
    ticket_id = routed.ticket_id or 0
    await support.staff("resolve", ticket_id=ticket_id)
    await support.rate(1, ticket_id, 2)
    [rating] = await support.ratings()
    async with session_scope(support.factory) as session:
        # delivery writes back the invitation's message id ("remember": rating_prompt)
        await ratings.set_comment_prompt(session, rating_id=rating.id, message_id=77)
    customer = await support.customer(1)

    comment = await support.write(1, "too slow", reply_to=77)
    assert (comment.ticket_id, comment.ticket_number) == (ticket_id, 1001)
    assert comment.effects == [
        ToCustomer(customer_id=customer.id, chat_id=1, say=Say.customer("en", "comment_thanks")),
        NotifyThread(
            ticket_id=ticket_id, say=Say.staff("rating_comment", number=1001, comment="too slow")
        ),
    ]
    more = await support.write(1, "and rude", reply_to=77)
    assert more.ticket_id == ticket_id
    [rating] = await support.ratings()
    assert rating.comment == "too slow\nand rude"
    rows = await support.messages(ticket_id)
    assert [m.text for m in rows] == ["x", "too slow", "and rude"]
    assert await support.count(Ticket) == 1

    # A reply to anything else is an ordinary message: it opens a new ticket.
    other = await support.write(1, "another thing", reply_to=78)
    assert other.ticket_number == 1002


async def test_a_comment_on_a_self_served_ticket_does_not_notify_agents(support: Support) -> None:
    solved = await support.write(1, "reset?", understanding=understood("account_login", 0.9))
    ticket_id = solved.ticket_id or 0
    await support.verdict(1, ticket_id, solved=True)
    given = await support.rate(1, ticket_id, 5)
    assert given.kinds() == ["answer_button", "to_customer", "to_customer"]
    [rating] = await support.ratings()
    async with session_scope(support.factory) as session:
        await ratings.set_comment_prompt(session, rating_id=rating.id, message_id=80)
    comment = await support.write(1, "quick, thanks", reply_to=80)
    assert comment.kinds() == ["to_customer"]


# ------------------------------------------------------------------------------ /new, /human


async def test_new_releases_the_current_ticket_then_reopen_and_the_queue(support: Support) -> None:
    first = await support.write(1, "first")
    first_id = first.ticket_id or 0
    customer = await support.customer(1)
    asked = await support.new_ticket(1)
    assert asked.effects == [
        ToCustomer(customer_id=customer.id, chat_id=1, say=Say.customer("en", "new_ticket"))
    ]
    released = await support.ticket(first_id)
    assert (released.status, released.is_current) == (TicketStatus.OPEN, False)

    support.tick(minutes=1)
    second = await support.write(1, "second")
    support.tick(minutes=1)
    third = await support.write(1, "more on second")
    second_id = second.ticket_id or 0
    assert (second.ticket_number, second.kinds()) == (
        1002,
        ["to_customer", "open_staff_place", "relay_to_staff"],
    )
    assert third.ticket_id == second_id
    assert [(t.number, t.is_current) for t in await support.all_tickets()] == [
        (1001, False),
        (1002, True),
    ]
    async with support.factory() as session:
        queue = await tickets.queue(session)
    assert [q.ticket.number for q in queue] == [1001, 1002]

    await support.staff("resolve", ticket_id=first_id)
    with pytest.raises(TicketNotActive):
        await support.staff("resolve", ticket_id=first_id)
    reopened = await support.staff("reopen", ticket_id=first_id)
    assert reopened.effects == [
        NotifyThread(ticket_id=first_id, say=Say.staff("reopened", agent="Alice", number=1001)),
        RefreshCard(ticket_id=first_id),
    ]
    back = await support.ticket(first_id)
    # open again for the agents, but #1002 keeps taking the customer's messages
    assert (back.status, back.is_current, back.reopened_count) == (TicketStatus.OPEN, False, 1)

    human = await support.human(1)
    assert human.effects == [
        ToCustomer(
            customer_id=customer.id,
            chat_id=1,
            say=Say.customer("en", "human_escalated", number=1002),
        ),
        NotifyThread(ticket_id=second_id, say=Say.staff("escalated", number=1002)),
        RefreshCard(ticket_id=second_id),
    ]
    assert (await support.ticket(second_id)).status == TicketStatus.ESCALATED


async def test_new_with_no_ticket_then_human_with_no_ticket(support: Support) -> None:
    asked = await support.new_ticket(1)
    customer = await support.customer(1)
    assert asked.effects == [
        ToCustomer(customer_id=customer.id, chat_id=1, say=Say.customer("en", "new_ticket"))
    ]
    human = await support.human(1)
    assert human.effects == [
        ToCustomer(customer_id=customer.id, chat_id=1, say=Say.customer("en", "human_no_ticket"))
    ]
    assert await support.count(Ticket) == 0


async def test_human_after_an_automatic_answer_hands_the_ticket_to_agents(
    support: Support,
) -> None:
    answered = await support.write(1, "reset?", understanding=understood("account_login", 0.9))
    ticket_id = answered.ticket_id or 0
    support.tick(minutes=1)
    human = await support.human(1)
    customer = await support.customer(1)
    [m] = await inbound_ids(support, ticket_id)
    assert human.effects == [
        ToCustomer(
            customer_id=customer.id,
            chat_id=1,
            say=Say.customer("en", "human_escalated", number=1001),
        ),
        OpenStaffPlace(ticket_id=ticket_id),
        RelayToStaff(ticket_id=ticket_id, message_id=m),
    ]
    ticket = await support.ticket(ticket_id)
    assert (ticket.status, ticket.escalated_at) == (
        TicketStatus.ESCALATED,
        T0 + timedelta(minutes=1),
    )
    with pytest.raises(AlreadyAnswered):  # the Yes/No buttons are spent
        await support.verdict(1, ticket_id, solved=True)
