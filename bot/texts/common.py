"""What every audience's texts share: HTML escaping, template values, Telegram's length rules
(UTF-16 code units) and splitting, durations and local times."""

from __future__ import annotations

import html
import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

TELEGRAM_TEXT_LIMIT = 4096

TELEGRAM_CAPTION_LIMIT = 1024


class _Values(dict[str, str]):
    """Template values; a placeholder without a value renders as "?" instead of raising."""

    def __missing__(self, key: str) -> str:
        return "?"


def escape(value: object) -> str:
    return html.escape(str(value), quote=False)


def format_seconds(seconds: float | None) -> str:
    """Short human duration: 45s, 12m, 3h 05m, 2d 4h; a dash when unknown."""
    if seconds is None or math.isnan(seconds):
        return "–"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    minutes = s // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    d, hours = divmod(hours, 24)
    return f"{d}d {hours}h"


def format_duration(delta: timedelta) -> str:
    """Short human duration: 45s, 12m, 3h 05m, 2d 4h (the digest's wording, one implementation)."""
    return format_seconds(delta.total_seconds())


def format_local(moment: datetime, tz: ZoneInfo) -> str:
    local = moment.astimezone(tz)
    return f"{local:%a %d %b %H:%M} ({tz.key})"


def split_lines(html_text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Split HTML made of self-contained lines (tags never span lines) at line breaks."""
    chunks: list[str] = []
    current = ""
    for line in html_text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if current and telegram_length(candidate) > limit:
            chunks.append(current)
            candidate = line
        current = candidate
    if current:
        chunks.append(current)
    return chunks


def telegram_length(text: str) -> int:
    """Telegram measures text in UTF-16 code units (an emoji can count as two)."""
    return len(text.encode("utf-16-le")) // 2


def _fitting_prefix(text: str, limit: int) -> int:
    """The largest index i such that text[:i] is at most ``limit`` UTF-16 units."""
    if telegram_length(text) <= limit:
        return len(text)
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)


def split_text(text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Split text into Telegram-sized chunks, preferring paragraph, line and word breaks."""
    chunks: list[str] = []
    rest = text
    while telegram_length(rest) > limit:
        end = _fitting_prefix(rest, limit)
        window = rest[:end]
        cut = max(window.rfind("\n\n"), window.rfind("\n"), window.rfind(" "))
        if cut < end // 2:
            cut = end
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    if rest:
        chunks.append(rest)
    return [c for c in chunks if c] or [text]


def split_escaped(header: str, text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """HTML messages of ``header`` + escaped ``text``, each within Telegram's limit.

    Telegram counts the text after parsing entities, so the raw text is split (escaping never
    cuts an entity in two) with room left for the header.
    """
    if not text:
        return [header]
    room = limit - telegram_length(header) - 1
    pieces = split_text(text, room)
    return [f"{header}\n{escape(p)}" if i == 0 else escape(p) for i, p in enumerate(pieces)]
