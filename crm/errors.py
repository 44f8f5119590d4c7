"""Domain errors: expected situations that become friendly replies, never tracebacks."""

from __future__ import annotations


class KefuError(Exception):
    """Base class of expected errors. ``code`` picks the sentence in ``bot/texts.py``."""

    code = "error"

    def __init__(self, message: str = "", **details: object) -> None:
        super().__init__(message or self.code)
        self.details = details


class TicketNotFound(KefuError):
    code = "ticket_not_found"


class TicketNotActive(KefuError):
    code = "ticket_not_active"


class TicketAlreadyActive(KefuError):
    code = "ticket_already_active"


class AlreadyRated(KefuError):
    code = "already_rated"


class InvalidRating(KefuError):
    code = "invalid_rating"


class NotRatable(KefuError):
    code = "not_ratable"


class AlreadyAnswered(KefuError):
    """The customer already said whether the automatic answer helped."""

    code = "already_answered"
