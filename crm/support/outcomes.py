"""What a flow decided should happen: effects, as plain data that survives a restart.

A flow returns an :class:`Outcome`; the flow runner stores its effects as outbox rows in the same
transaction as the state change; a front end carries them out (``bot/delivery.py`` with Telegram,
``bot/console.py`` as terminal text). Effects name *what* to say (a sentence key of
``bot/texts`` and its values) and *where*; they never hold rendered Telegram markup.

Every effect has a lane (customers never wait behind staff-chat traffic) and a destination:
effects to one destination are carried out strictly in the order they were decided.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from crm.models import Lane

JSONValue = str | int | float | bool | None | list[Any] | dict[str, Any]


@dataclass(frozen=True, slots=True)
class Say:
    """A sentence of ``bot/texts``: ``audience`` is ``customer`` or ``staff``; ``key`` names it."""

    audience: str
    key: str
    language: str = "en"
    values: dict[str, JSONValue] = field(default_factory=dict)

    @classmethod
    def customer(cls, language: str, key: str, **values: JSONValue) -> Say:
        return cls("customer", key, language, dict(values))

    @classmethod
    def staff(cls, key: str, **values: JSONValue) -> Say:
        return cls("staff", key, "en", dict(values))


@dataclass(frozen=True, slots=True)
class Keyboard:
    """Buttons under a message: ``rating``, ``solved``, ``languages``, ``staff_card``,
    ``categories``, ``share_contact``, ``remove``, ``force_reply``."""

    kind: str
    args: tuple[JSONValue, ...] = ()


class Effect:
    """Base of all effects. Subclasses are frozen dataclasses with JSON-friendly fields."""

    kind: ClassVar[str]
    lane: ClassVar[Lane]

    @property
    def destination(self) -> str:
        raise NotImplementedError

    def payload(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


def customer_destination(chat_id: int) -> str:
    return f"chat:{chat_id}"


def ticket_destination(ticket_id: int) -> str:
    return f"ticket:{ticket_id}"


# ------------------------------------------------------------------------------ customer lane


@dataclass(frozen=True, slots=True)
class ToCustomer(Effect):
    """Tell the customer something. ``remember`` names a write-back for the sent message's id
    (``rating_prompt``: replies to it are the rating's comment)."""

    kind: ClassVar[str] = "to_customer"
    lane: ClassVar[Lane] = Lane.CUSTOMER
    customer_id: int
    chat_id: int
    say: Say
    keyboard: Keyboard | None = None
    remember: str | None = None
    remember_id: int | None = None

    @property
    def destination(self) -> str:
        return customer_destination(self.chat_id)


@dataclass(frozen=True, slots=True)
class CustomerStatus(Effect):
    """The customer's tickets in work (``/status``), as they are when it is sent."""

    kind: ClassVar[str] = "customer_status"
    lane: ClassVar[Lane] = Lane.CUSTOMER
    customer_id: int
    chat_id: int
    language: str

    @property
    def destination(self) -> str:
        return customer_destination(self.chat_id)


@dataclass(frozen=True, slots=True)
class RelayToCustomer(Effect):
    """An agent's stored message, carried to the customer as the bot (copy of the staff
    message for media; text with an optional signature). The customer's copy is written back."""

    kind: ClassVar[str] = "relay_to_customer"
    lane: ClassVar[Lane] = Lane.CUSTOMER
    message_id: int
    ticket_id: int
    chat_id: int
    signature: Say | None = None

    @property
    def destination(self) -> str:
        return customer_destination(self.chat_id)


@dataclass(frozen=True, slots=True)
class EditKeyboard(Effect):
    """Replace (or remove, ``keyboard=None``) the buttons under a message already sent."""

    kind: ClassVar[str] = "edit_keyboard"
    lane: ClassVar[Lane] = Lane.CUSTOMER
    chat_id: int
    message_id: int
    keyboard: Keyboard | None = None
    staff: bool = False

    @property
    def destination(self) -> str:
        return customer_destination(self.chat_id)


@dataclass(frozen=True, slots=True)
class AnswerButton(Effect):
    """Answer a button tap (stops the spinner); ``say`` shows a short notice."""

    kind: ClassVar[str] = "answer_button"
    lane: ClassVar[Lane] = Lane.CUSTOMER
    callback_query_id: str
    say: Say | None = None
    alert: bool = False

    @property
    def destination(self) -> str:
        return f"button:{self.callback_query_id}"


# ------------------------------------------------------------------------------ staff lane


@dataclass(frozen=True, slots=True)
class OpenStaffPlace(Effect):
    """Give the ticket its place in the staff chat: a forum topic with the card, or the card."""

    kind: ClassVar[str] = "open_staff_place"
    lane: ClassVar[Lane] = Lane.STAFF
    ticket_id: int

    @property
    def destination(self) -> str:
        return ticket_destination(self.ticket_id)


@dataclass(frozen=True, slots=True)
class RelayToStaff(Effect):
    """A stored customer message, shown in its ticket's place; the staff copy is written back."""

    kind: ClassVar[str] = "relay_to_staff"
    lane: ClassVar[Lane] = Lane.STAFF
    ticket_id: int
    message_id: int

    @property
    def destination(self) -> str:
        return ticket_destination(self.ticket_id)


@dataclass(frozen=True, slots=True)
class RefreshCard(Effect):
    """Show the ticket's state as it is when sent (status, assignee, analysis) on its card."""

    kind: ClassVar[str] = "refresh_card"
    lane: ClassVar[Lane] = Lane.STAFF
    ticket_id: int

    @property
    def destination(self) -> str:
        # Its own queue: a card edit never holds up the ticket's messages (and a card that does
        # not exist yet is drawn with the ticket's state when it is posted).
        return f"card:{self.ticket_id}"


@dataclass(frozen=True, slots=True)
class NotifyThread(Effect):
    """A notice in the ticket's place (claimed, resolved, rating, customer unreachable...)."""

    kind: ClassVar[str] = "notify_thread"
    lane: ClassVar[Lane] = Lane.STAFF
    ticket_id: int
    say: Say

    @property
    def destination(self) -> str:
        return ticket_destination(self.ticket_id)


@dataclass(frozen=True, slots=True)
class ToStaffChat(Effect):
    """A reply in the staff chat outside any ticket's place (refusals, usage, the queue)."""

    kind: ClassVar[str] = "to_staff_chat"
    lane: ClassVar[Lane] = Lane.STAFF
    chat_id: int
    say: Say
    thread_id: int | None = None
    reply_to_message_id: int | None = None

    @property
    def destination(self) -> str:
        return f"chat:{self.chat_id}"


@dataclass(frozen=True, slots=True)
class StaffQueue(Effect):
    """The waiting tickets (``/queue``), as they are when sent."""

    kind: ClassVar[str] = "staff_queue"
    lane: ClassVar[Lane] = Lane.STAFF
    chat_id: int
    thread_id: int | None = None

    @property
    def destination(self) -> str:
        return f"chat:{self.chat_id}"


@dataclass(frozen=True, slots=True)
class EditStaffKeyboard(Effect):
    """Swap the buttons of a ticket's card (the category chooser and back)."""

    kind: ClassVar[str] = "edit_staff_keyboard"
    lane: ClassVar[Lane] = Lane.STAFF
    ticket_id: int
    chat_id: int
    message_id: int
    keyboard: Keyboard

    @property
    def destination(self) -> str:
        return ticket_destination(self.ticket_id)


@dataclass(frozen=True, slots=True)
class AnswerStaffButton(Effect):
    kind: ClassVar[str] = "answer_staff_button"
    lane: ClassVar[Lane] = Lane.STAFF
    callback_query_id: str
    say: Say | None = None
    alert: bool = False

    @property
    def destination(self) -> str:
        return f"button:{self.callback_query_id}"


# ------------------------------------------------------------------------------ pre-rendered


@dataclass(frozen=True, slots=True)
class Post(Effect):
    """Text already rendered by ``bot/texts`` (records, digests), for any chat.

    ``photo`` is a base64 PNG (a digest chart) sent after the text; ``reply_markup`` is a
    :class:`Keyboard`.
    """

    kind: ClassVar[str] = "post"
    lane: ClassVar[Lane] = Lane.STAFF
    chat_id: int
    html: list[str]
    for_customer: bool = False
    thread_id: int | None = None
    reply_to_message_id: int | None = None
    keyboard: Keyboard | None = None
    photo_png_base64: str | None = None
    photo_caption: str | None = None

    @property
    def destination(self) -> str:
        return f"chat:{self.chat_id}"


EFFECT_TYPES: dict[str, type[Effect]] = {
    t.kind: t
    for t in (
        ToCustomer,
        CustomerStatus,
        RelayToCustomer,
        EditKeyboard,
        AnswerButton,
        OpenStaffPlace,
        RelayToStaff,
        RefreshCard,
        NotifyThread,
        ToStaffChat,
        StaffQueue,
        EditStaffKeyboard,
        AnswerStaffButton,
        Post,
    )
}


def lane_of(effect: Effect) -> Lane:
    if isinstance(effect, Post):
        return Lane.CUSTOMER if effect.for_customer else Lane.STAFF
    return effect.lane


def effect_from_payload(kind: str, payload: dict[str, Any]) -> Effect:
    """Rebuild an effect from its outbox row."""
    cls = EFFECT_TYPES[kind]
    values = dict(payload)
    for name in ("say", "signature"):
        if isinstance(values.get(name), dict):
            values[name] = Say(**values[name])
    if isinstance(values.get("keyboard"), dict):
        keyboard = values["keyboard"]
        values["keyboard"] = Keyboard(keyboard["kind"], tuple(keyboard.get("args") or ()))
    return cls(**values)


@dataclass(slots=True)
class Outcome:
    """The effects of one flow, in the order they are to be carried out, and what the caller
    may want to know (the ticket it touched)."""

    effects: list[Effect] = field(default_factory=list)
    ticket_id: int | None = None
    ticket_number: int | None = None
    duplicate: bool = False

    def add(self, *effects: Effect) -> Outcome:
        self.effects.extend(effects)
        return self

    def kinds(self) -> list[str]:
        return [e.kind for e in self.effects]
