"""A fake Telegram Bot API server that the test suite owns.

It speaks real HTTP on 127.0.0.1, so the *real* python-telegram-bot stack (``Bot``, ``ExtBot``,
``Application``, ``Updater``, ``AIORateLimiter``, file downloads, ...) can be driven end to end
without Telegram and without mocking anything inside PTB::

    async with FakeBotAPI(token=TOKEN) as api:
        app = (
            Application.builder()
            .token(TOKEN)
            .base_url(f"{api.url}/bot")
            .base_file_url(f"{api.url}/file/bot")
            .build()
        )
        alice = api.add_user("Alice", username="alice")
        async with app:
            await app.start()
            await app.updater.start_polling(poll_interval=0, timeout=1)
            api.user_sends_text(alice, "/start")            # queued as an Update
            [reply] = await api.wait_for_messages(alice["id"], 1)
            api.user_taps_button(alice, reply, "lang:en")   # callback_query Update
            await api.wait_idle()
            await app.updater.stop()
            await app.stop()

The server keeps a small world model (users, private chats, supergroups, forum topics, messages,
files, updates) in plain JSON dicts shaped exactly like the Bot API objects, and validates
requests the way Telegram does, answering with Telegram's own error descriptions (``Bad Request:
chat not found``, ``Bad Request: can't parse entities: ...``, 429 flood waits, ...). Note that
PTB strips "Bad Request: " and lower-cases the rest, so ``BadRequest.message`` reads e.g.
``"Can't parse entities: unsupported start tag ..."``.

World building (synchronous, returns Bot API dicts):
    ``add_user``, ``add_supergroup`` (``is_forum=True`` for forums), ``add_group`` (a basic
    group), ``add_forum_topic``, ``set_member_status``, ``user_blocks_bot``.
Human admins (Telegram's own behaviour, updates included):
    ``admin_deletes_topic``, ``admin_closes_topic``, ``migrate_chat`` (basic group ->
    supergroup, ``migrate_to_chat_id``).
Simulated users (each queues an Update and returns the new Message dict):
    ``user_sends_text`` / ``_photo`` / ``_document`` / ``_voice`` / ``_video`` / ``_sticker`` /
    ``_contact`` / ``_dice``, ``user_pins_message``, ``user_sets_auto_delete_timer``, all
    accepting ``chat_id=``, ``message_thread_id=``, ``reply_to_message_id=`` (default: the
    user's private chat); ``user_taps_button`` queues a callback_query and raises
    AssertionError if the message has no such button. ``redeliver`` delivers a confirmed
    update again (same update_id).
Observing:
    ``sent`` (every message the bot created, edits applied in place), ``sent_to``,
    ``requests`` (method, params), ``messages_in``, ``message``, ``topics``,
    ``callback_answers``, ``reply_markups``, ``reactions``, ``deleted``, ``deleted_topics``,
    ``internal_errors`` (bugs in the fake / unsupported methods); timings: ``enqueued_at``
    (per update_id), ``sent_at`` (per chat and message id), ``update_id_of``, ``copied_from``;
    ``wait_for``, ``wait_for_messages`` and ``wait_idle`` raise AssertionError listing the last
    requests when they time out.
Fault injection:
    ``flood_limit`` (429 with retry_after=1), ``fail_next``, ``inject_faults`` /
    ``clear_faults`` (a share of calls fail with 429, 500 or a dropped connection, counted in
    ``fault_counts``), ``set_latency``, ``freeze_sends`` / ``thaw_sends`` (hold every request
    but getUpdates; on thaw, requests of clients that have gone away are ``discarded``).

Telegram behaviours that are reproduced on purpose because they bite real bots:
    * editMessageText/editMessageCaption without ``reply_markup`` remove the inline keyboard;
    * a message in a forum topic that is not a reply carries ``reply_to_message`` pointing at
      the topic's ``forum_topic_created`` service message (whose id is the thread id);
    * in a plain supergroup ``message_thread_id`` is ignored, in a forum an unknown one fails;
    * bare hosts in links are normalised (``example.com`` -> ``http://example.com/``);
    * a second getUpdates terminates a pending one with 409 Conflict.

Deliberate strictness beyond Telegram: with ``strict_html_entities=True`` (the default) an
unknown HTML entity such as ``&nbsp;`` is rejected with "can't parse entities: Unsupported HTML
entity" (Telegram keeps it as literal text), so unescaped user content is caught by the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import random
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

from aiohttp import BodyPartReader, web

JSON = dict[str, Any]
UserRef = JSON | int


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_DOWNLOAD_SIZE = 20 * 1024 * 1024
DEFAULT_TOKEN = "123456789:AAFakeTokenForKefuTests0123456789abc"
TOPIC_COLORS = (7322096, 16766590, 13338331, 9367192, 16749490, 16478047)
CHAT_ACTIONS = _words(
    "typing upload_photo record_video upload_video record_voice upload_voice upload_document"
    " choose_sticker find_location record_video_note upload_video_note"
)
# Parameters whose values PTB (and every other client) sends JSON-encoded inside a form field.
JSON_PARAMS = frozenset(
    _words(
        "reply_markup reply_parameters entities caption_entities media allowed_updates commands"
        " scope link_preview_options reaction results options permissions message_ids"
    )
)
CONTENT_KEYS = _words(
    "text entities animation audio document photo sticker video voice contact caption"
    " caption_entities"
)
_ADMIN_RIGHTS = _words(
    "manage_chat delete_messages manage_video_chats restrict_members promote_members change_info"
    " invite_users post_stories edit_stories delete_stories pin_messages manage_topics"
)
_RESTRICTED_RIGHTS = _words(
    "change_info invite_users pin_messages send_messages send_polls send_other_messages"
    " add_web_page_previews manage_topics send_audios send_documents send_photos send_videos"
    " send_video_notes send_voice_notes"
)
_BUTTON_ACTIONS = frozenset(
    _words(
        "url callback_data switch_inline_query switch_inline_query_current_chat login_url"
        " web_app switch_inline_query_chosen_chat callback_game pay copy_text"
    )
)
MEDIA_KINDS = ("photo", "document", "voice", "video", "sticker", "audio", "animation")
# Update types Telegram does not deliver unless explicitly listed in allowed_updates.
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
MEMBER_STATUSES = frozenset({"creator", "administrator", "member", "restricted", "left", "kicked"})
FAULT_KINDS = ("429", "500", "drop")


# --------------------------------------------------------------------------------------------
# Errors and parameters
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answer of the Bot API (``{"ok": false, "error_code": ..., ...}``)."""

    def __init__(self, error_code: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def payload(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.parameters is not None:
            body["parameters"] = self.parameters
        return body


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


class EntityParseError(ValueError):
    """Raised by the markup parsers; the message is Telegram's text after "can't parse entities"."""


@dataclass(frozen=True)
class Upload:
    """A file uploaded as a multipart/form-data part."""

    part_name: str
    filename: str
    content: bytes
    content_type: str


class _Params:
    """Typed access to request parameters (which arrive as strings from PTB)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def has(self, name: str) -> bool:
        return self.values.get(name) not in (None, "")

    def text(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None or isinstance(value, Upload):
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def integer(self, name: str, *, required: bool = False) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                if name == "message_id":
                    raise _bad("message identifier is not specified")
                raise _bad(f"{name} is empty")
            return None
        if isinstance(value, bool | int):
            return int(value)
        try:
            return int(str(value))
        except ValueError:
            raise _bad(f"invalid {name} specified") from None

    def require_int(self, name: str) -> int:
        value = self.integer(name, required=True)
        assert value is not None
        return value

    def number(self, name: str) -> float | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise _bad(f"invalid {name} specified") from None

    def flag(self, name: str) -> bool:
        return self.values.get(name) in (True, 1, "true", "True", "1")

    def obj(self, name: str) -> Any:
        return self.values.get(name)


# --------------------------------------------------------------------------------------------
# Markup parsers (HTML, MarkdownV2, Markdown) modelled on tdlib's MessageEntity.cpp
# --------------------------------------------------------------------------------------------


def _u16(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _byte_offset(text: str, pos: int) -> int:
    return len(text[:pos].encode())


_HTML_TAGS = frozenset(
    {"a", "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler"}
    | {"code", "pre", "blockquote", "tg-emoji"}
)
_SIMPLE_TAGS = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline"}
_SIMPLE_TAGS |= {"ins": "underline", "s": "strikethrough", "strike": "strikethrough"}
_SIMPLE_TAGS |= {"del": "strikethrough", "span": "spoiler", "tg-spoiler": "spoiler"}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_LIKE = re.compile(r"&#?[A-Za-z0-9]+;")
_NUMERIC_ENTITY = re.compile(r"&#(?:x([0-9a-fA-F]*)|([0-9]*))")
_NAMED_ENTITY = re.compile(r"&([A-Za-z]*)")


def _decode_html_entity(text: str, pos: int) -> tuple[str, int]:
    """Decode ``&...;`` at ``pos`` like tdlib; returns ("", pos) when it is not an entity."""
    if numeric := _NUMERIC_ENTITY.match(text, pos):
        hex_digits, dec_digits = numeric.groups()
        digits = hex_digits if hex_digits is not None else dec_digits
        code = int(digits, 16 if hex_digits is not None else 10) if digits else 0
        if code == 0 or code >= 0x10FFFF or numeric.end() - pos >= 10:
            return "", pos
        char, end = chr(code), numeric.end()
    else:
        named = _NAMED_ENTITY.match(text, pos)
        if named is None or named[1] not in _NAMED_ENTITIES:
            return "", pos
        char, end = _NAMED_ENTITIES[named[1]], named.end()
    return char, end + 1 if text.startswith(";", end) else end


def _normalize_url(url: str) -> str | None:
    """Validate a link like tdlib's check_url; bare hosts get a scheme and a trailing slash."""
    url = url.strip()
    if re.fullmatch(r"tg://\S+", url, re.IGNORECASE):
        return url
    if not re.match(r"^[a-z][a-z0-9+.-]*://", url, re.IGNORECASE):
        url = "http://" + url
    match = re.fullmatch(r"(https?|ftp)://([^/?#\s]+)([/?#]\S*)?", url, re.IGNORECASE)
    if match is None:
        return None
    host = match.group(2).rsplit("@", 1)[-1].split(":", 1)[0]
    if "." not in host and host.lower() != "localhost":
        return None
    rest = match.group(3) or ""
    return f"{match.group(1).lower()}://{match.group(2)}{'' if rest.startswith('/') else '/'}{rest}"


def _link_entity(url: str, offset: int, length: int) -> JSON | None:
    normalized = _normalize_url(url)
    if normalized is None:
        return None
    return {"type": "text_link", "offset": offset, "length": length, "url": normalized}


def _finish_entities(entities: list[JSON]) -> list[JSON]:
    for entity in entities:
        if entity["type"] == "code" or not entity.get("language", True):
            entity.pop("language", None)
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


@dataclass
class _OpenTag:
    name: str
    argument: str
    offset: int  # UTF-16 offset in the output text
    begin: int  # index into the output piece list
    byte_offset: int = 0


def parse_html(text: str, *, strict_entities: bool = True) -> tuple[str, list[JSON]]:
    """Parse Telegram's HTML subset into ``(plain_text, entities)``."""
    out: list[str] = []
    u16 = 0
    entities: list[JSON] = []
    stack: list[_OpenTag] = []
    n = len(text)
    i = 0

    def at(pos: int) -> str:
        return text[pos] if pos < n else ""

    while i < n:
        c = text[i]
        if c == "&":
            decoded, end = _decode_html_entity(text, i)
            if decoded:
                out.append(decoded)
                u16 += _u16(decoded)
                i = end
                continue
            if strict_entities and (m := _ENTITY_LIKE.match(text, i)):
                offset = _byte_offset(text, i)
                raise EntityParseError(
                    f'Unsupported HTML entity "{m.group(0)}" at byte offset {offset}'
                )
        if c != "<":
            out.append(c)
            u16 += _u16(c)
            i += 1
            continue
        begin = i
        boff = _byte_offset(text, begin)
        i += 1
        if at(i) != "/":
            while i < n and not text[i].isspace() and text[i] != ">":
                i += 1
            if i >= n:
                raise EntityParseError(f"Unclosed start tag at byte offset {boff}")
            tag = text[begin + 1 : i].lower()
            if tag not in _HTML_TAGS:
                raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {boff}')
            argument = ""
            while at(i) != ">":
                while i < n and text[i].isspace():
                    i += 1
                if at(i) == ">":
                    break
                if i >= n:
                    raise EntityParseError(f"Unclosed start tag at byte offset {boff}")
                attr_begin = i
                while i < n and not text[i].isspace() and text[i] not in "=>/\"'":
                    i += 1
                attr = text[attr_begin:i].lower()
                if not attr:
                    raise EntityParseError(
                        f'Empty attribute name in the tag "{tag}" at byte offset {boff}'
                    )
                while i < n and text[i].isspace():
                    i += 1
                if at(i) != "=":
                    if i >= n:
                        raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {boff}')
                    if tag == "blockquote" and attr == "expandable":
                        argument = "expandable"
                    continue
                i += 1
                while i < n and text[i].isspace():
                    i += 1
                if i >= n:
                    raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {boff}')
                if text[i] not in "\"'":
                    token_begin = i
                    while i < n and ((text[i].isascii() and text[i].isalnum()) or text[i] in ".-"):
                        i += 1
                    value = text[token_begin:i].lower()
                    if i < n and not text[i].isspace() and text[i] != ">":
                        raise EntityParseError(
                            "Unexpected end of name token at byte offset "
                            f"{_byte_offset(text, token_begin)}"
                        )
                else:
                    quote = text[i]
                    i += 1
                    chars: list[str] = []
                    while i < n and text[i] != quote:
                        if text[i] == "&":
                            decoded, end = _decode_html_entity(text, i)
                            if decoded:
                                chars.append(decoded)
                                i = end
                                continue
                        chars.append(text[i])
                        i += 1
                    i += 1 if i < n else 0
                    value = "".join(chars)
                if i >= n:
                    raise EntityParseError(f"Unclosed start tag at byte offset {boff}")
                if tag == "a" and attr == "href":
                    argument = value
                elif tag == "code" and attr == "class" and value.startswith("language-"):
                    argument = value.removeprefix("language-")
                elif tag == "span" and attr == "class" and value == "tg-spoiler":
                    argument = "spoiler"
                elif tag == "tg-emoji" and attr == "emoji-id":
                    argument = value
            if tag == "span" and argument != "spoiler":
                raise EntityParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {boff}'
                )
            stack.append(_OpenTag(tag, argument, u16, len(out)))
        else:
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {boff}")
            while i < n and not text[i].isspace() and text[i] != ">":
                i += 1
            end_name = text[begin + 2 : i]
            while i < n and text[i].isspace():
                i += 1
            if at(i) != ">":
                raise EntityParseError(f"Unclosed end tag at byte offset {boff}")
            top = stack.pop()
            if end_name and end_name != top.name:
                raise EntityParseError(
                    f'Unmatched end tag at byte offset {boff}, expected "</{top.name}>", '
                    f'found "</{end_name}>"'
                )
            if u16 > top.offset:
                _close_html_tag(top, u16 - top.offset, "".join(out[top.begin :]), entities)
        i += 1
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    return "".join(out), _finish_entities(entities)


def _close_html_tag(top: _OpenTag, length: int, inner: str, entities: list[JSON]) -> None:
    offset = top.offset
    last = entities[-1] if entities else None
    same_span = last is not None and last["offset"] == offset and last["length"] == length
    if top.name in _SIMPLE_TAGS:
        entities.append({"type": _SIMPLE_TAGS[top.name], "offset": offset, "length": length})
    elif top.name == "a":
        link = _link_entity(top.argument or inner, offset, length)
        if link is not None:
            entities.append(link)
    elif top.name == "pre":
        if last is not None and same_span and last["type"] == "code" and last.get("language"):
            last["type"] = "pre"
        else:
            entities.append({"type": "pre", "offset": offset, "length": length})
    elif top.name == "code":
        if last is not None and same_span and last["type"] == "pre" and top.argument:
            last["language"] = top.argument
        else:
            entity = {"type": "code", "offset": offset, "length": length}
            entities.append(entity | ({"language": top.argument} if top.argument else {}))
    elif top.name == "blockquote":
        kind = "expandable_blockquote" if top.argument else "blockquote"
        entities.append({"type": kind, "offset": offset, "length": length})
    elif top.name == "tg-emoji" and top.argument:
        entities.append(
            {"type": "custom_emoji", "offset": offset, "length": length}
            | {"custom_emoji_id": top.argument}
        )


_MDV2_RESERVED = "_*[]()~`>#+-=|{}.!"
_MDV2_NAMES = {"text_link": "TextUrl", "custom_emoji": "CustomEmoji"}
_MDV2_CLOSERS = {"bold": "*", "strikethrough": "~", "code": "`", "pre": "```", "text_link": "]"}
_MDV2_CLOSERS |= {"custom_emoji": "]", "underline": "__", "spoiler": "||"}


def _skip_pre_header(text: str, i: int) -> tuple[int, str]:
    """After an opening ``` return (first content index, language) like tdlib."""
    n = len(text)
    language = ""
    j = i
    while j < n and not text[j].isspace() and text[j] != "`":
        j += 1
    if i != j and j < n and text[j] != "`":
        language, i = text[i:j], j
    if i < n and text[i] in "\r\n":
        i += 2 if i + 1 < n and text[i + 1] in "\r\n" and text[i] != text[i + 1] else 1
    return i, language


def _escaped(text: str, i: int) -> bool:
    return text[i] == "\\" and i + 1 < len(text) and 0 < ord(text[i + 1]) <= 126


def parse_markdown_v2(text: str) -> tuple[str, list[JSON]]:
    """Parse MarkdownV2 into ``(plain_text, entities)``, enforcing the escaping rule."""
    out: list[str] = []
    u16 = 0
    entities: list[JSON] = []
    stack: list[_OpenTag] = []
    quote_start: int | None = None
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        in_code = bool(stack) and stack[-1].name in ("code", "pre")
        if (i == 0 or text[i - 1] == "\n") and not in_code:
            if c == ">":
                quote_start = u16 if quote_start is None else quote_start
                i += 1
                continue
            if quote_start is not None:
                if u16 - 1 > quote_start:
                    entities.append(
                        {
                            "type": "blockquote",
                            "offset": quote_start,
                            "length": u16 - 1 - quote_start,
                        }
                    )
                quote_start = None
        if _escaped(text, i):
            out.append(text[i + 1])
            u16 += 1
            i += 2
            continue
        if c not in ("`" if in_code else _MDV2_RESERVED):
            out.append(c)
            u16 += _u16(c)
            i += 1
            continue
        top = stack[-1] if stack else None
        if top is not None and top.name == "italic":
            is_end = c == "_" and not text.startswith("__", i)
        else:
            is_end = top is not None and text.startswith(_MDV2_CLOSERS[top.name], i)
        if not is_end:
            begin = i
            argument = ""
            if text.startswith("__", i):
                kind, i = "underline", i + 2
            elif c == "_":
                kind, i = "italic", i + 1
            elif c in "*~[":
                kind, i = {"*": "bold", "~": "strikethrough", "[": "text_link"}[c], i + 1
            elif text.startswith("||", i):
                kind, i = "spoiler", i + 2
            elif text.startswith("```", i):
                kind = "pre"
                i, argument = _skip_pre_header(text, i + 3)
            elif c == "`":
                kind, i = "code", i + 1
            elif text.startswith("![", i):
                kind, i = "custom_emoji", i + 2
            else:
                raise EntityParseError(
                    f"Character '{c}' is reserved and must be escaped with the preceding '\\'"
                )
            stack.append(_OpenTag(kind, argument, u16, len(out), _byte_offset(text, begin)))
            continue
        assert top is not None
        stack.pop()
        i += len(_MDV2_CLOSERS.get(top.name, "_"))
        url = ""
        if top.name in ("text_link", "custom_emoji"):
            if text.startswith("(", i):
                i += 1
                url_begin = i
                chars: list[str] = []
                while i < n and text[i] != ")":
                    if _escaped(text, i):
                        chars.append(text[i + 1])
                        i += 2
                        continue
                    chars.append(text[i])
                    i += 1
                if i >= n:
                    raise EntityParseError(
                        f"Can't find end of a URL at byte offset {_byte_offset(text, url_begin)}"
                    )
                i += 1
                url = "".join(chars)
            else:
                url = "".join(out[top.begin :])
        if u16 == top.offset:
            continue
        entity: JSON | None = {"type": top.name, "offset": top.offset, "length": u16 - top.offset}
        if top.name == "text_link":
            entity = _link_entity(url, top.offset, u16 - top.offset)
        elif top.name == "custom_emoji":
            match = re.fullmatch(r"tg://emoji\?id=(\d+)", url)
            if match is None:
                raise EntityParseError("Custom emoji entity must contain a tg://emoji URL")
            entity = (entity or {}) | {"custom_emoji_id": match.group(1)}
        elif top.name == "pre" and top.argument:
            entity = (entity or {}) | {"language": top.argument}
        if entity is not None:
            entities.append(entity)
    if stack:
        last = stack[-1]
        name = _MDV2_NAMES.get(last.name, last.name.title())
        name = "PreCode" if last.name == "pre" and last.argument else name
        raise EntityParseError(f"Can't find end of {name} entity at byte offset {last.byte_offset}")
    if quote_start is not None and u16 > quote_start:
        entities.append({"type": "blockquote", "offset": quote_start, "length": u16 - quote_start})
    return "".join(out), _finish_entities(entities)


def parse_markdown(text: str) -> tuple[str, list[JSON]]:
    """Parse legacy Markdown (``*bold*``, ``_italic_``, ```code```, ``[text](url)``)."""
    out: list[str] = []
    u16 = 0
    entities: list[JSON] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.append(text[i + 1])
            u16 += 1
            i += 2
            continue
        if c not in "_*`[":
            out.append(c)
            u16 += _u16(c)
            i += 1
            continue
        begin = i
        end_char = "]" if c == "[" else c
        i += 1
        is_pre = c == "`" and text.startswith("``", i)
        language = ""
        if is_pre:
            i, language = _skip_pre_header(text, i + 2)
        start_u16, start_idx = u16, len(out)
        while i < n and (text[i] != end_char or (is_pre and not text.startswith("``", i + 1))):
            out.append(text[i])
            u16 += _u16(text[i])
            i += 1
        if i >= n:
            raise EntityParseError(
                f"Can't find end of the entity starting at byte offset {_byte_offset(text, begin)}"
            )
        if u16 != start_u16:
            length = u16 - start_u16
            kind = {"_": "italic", "*": "bold", "`": "pre" if is_pre else "code"}.get(c)
            if kind is not None:
                entity: JSON = {"type": kind, "offset": start_u16, "length": length}
                entities.append(entity | ({"language": language} if language else {}))
            else:
                url = "".join(out[start_idx:])
                if text.startswith("(", i + 1):
                    close = text.find(")", i + 2)
                    close = n if close < 0 else close
                    url, i = text[i + 2 : close], close
                link = _link_entity(url, start_u16, length)
                if link is not None:
                    entities.append(link)
        i += 3 if is_pre else 1
    return "".join(out), _finish_entities(entities)


def _trim(text: str, entities: list[JSON]) -> tuple[str, list[JSON]]:
    """Strip surrounding whitespace like Telegram and shift/clip entities accordingly."""
    left = _u16(text[: len(text) - len(text.lstrip())])
    stripped = text.strip()
    total = _u16(stripped)
    result = []
    for entity in entities:
        start = max(int(entity["offset"]) - left, 0)
        end = min(int(entity["offset"]) + int(entity["length"]) - left, total)
        if end > start:
            result.append(entity | {"offset": start, "length": end - start})
    return stripped, result


# --------------------------------------------------------------------------------------------
# World state
# --------------------------------------------------------------------------------------------


@dataclass
class _Chat:
    info: JSON  # the Chat object embedded in messages
    is_forum: bool = False
    members: dict[int, str] = field(default_factory=dict)
    messages: dict[int, JSON] = field(default_factory=dict)
    bot_message_ids: set[int] = field(default_factory=set)
    last_message_id: int = 0
    topics: dict[int, JSON] = field(default_factory=dict)
    closed_topics: set[int] = field(default_factory=set)
    # closed by a human admin: the bot's sends fail with TOPIC_CLOSED until it is reopened
    locked_topics: set[int] = field(default_factory=set)
    pinned: list[int] = field(default_factory=list)
    blocked_bot: bool = False
    migrated_to: int | None = None  # a basic group upgraded to this supergroup

    @property
    def id(self) -> int:
        return int(self.info["id"])

    @property
    def is_private(self) -> bool:
        return bool(self.info["type"] == "private")

    @property
    def kind(self) -> str:
        return str(self.info["type"])

    def next_message_id(self) -> int:
        self.last_message_id += 1
        return self.last_message_id


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    kind: str
    content: bytes
    file_path: str
    media: Any  # what goes under message[kind]: a dict, or the PhotoSize list for photos


@dataclass
class _Bucket:
    rate: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        self.tokens = min(max(1.0, self.rate), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now


def _fake_jpeg(size: int) -> bytes:
    body = bytes((i * 37) % 256 for i in range(size))
    return (
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + body + b"\xff\xd9"
    )


_FAKE_CONTENT = {
    "voice": b"OggS\x00\x02" + bytes(200),
    "video": b"\x00\x00\x00\x18ftypmp42" + bytes(500),
    "sticker": b"RIFF\x00\x01\x00\x00WEBPVP8 " + bytes(300),
    "audio": b"ID3\x03\x00" + bytes(400),
    "animation": b"\x00\x00\x00\x18ftypmp42" + bytes(300),
    "document": b"%PDF-1.4 fake\n",
}
_FILE_DIRS = {
    "photo": ("photos", "jpg"),
    "document": ("documents", ""),
    "voice": ("voice", "oga"),
    "video": ("videos", "mp4"),
    "sticker": ("stickers", "webp"),
    "audio": ("music", "mp3"),
    "animation": ("animations", "mp4"),
}

Handler = Callable[[_Params], Awaitable[Any]]


class Where(TypedDict, total=False):
    """Where a simulated user message goes (default: the user's private chat with the bot)."""

    chat_id: int | None
    message_thread_id: int | None
    reply_to_message_id: int | None


def _opt(**values: Any) -> JSON:
    """The given keyword arguments without the empty ones (None, "", [])."""
    return {key: value for key, value in values.items() if value not in (None, "", [])}


class FakeBotAPI:
    """In-process fake of ``api.telegram.org`` for one bot token (see the module docstring)."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_first_name: str = "Kefu",
        bot_username: str = "kefu_test_bot",
        strict_html_entities: bool = True,
    ) -> None:
        self.token = token
        self.strict_html_entities = strict_html_entities
        prefix = token.split(":", 1)[0]
        bot_id = int(prefix) if prefix.isdigit() else 123456789
        self.bot_user: JSON = {
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }
        # observable state
        self.sent: list[JSON] = []
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.callback_answers: dict[str, JSON] = {}
        self.reply_markups: dict[tuple[int, int], JSON] = {}
        self.reactions: dict[tuple[int, int], list[JSON]] = {}
        self.deleted: list[tuple[int, int]] = []
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        self.webhook: JSON | None = None
        self.flood_errors = 0
        self.internal_errors: list[str] = []
        # injected faults by kind ("429", "500", "drop") and each one as (method, kind, params)
        self.fault_counts: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self.faults: list[tuple[str, str, dict[str, Any]]] = []
        # requests held by freeze_sends() whose client had gone away at thaw_sends(): never run
        self.discarded: list[tuple[str, dict[str, Any]]] = []
        # timings (time.monotonic() of this process): when each update was queued and when each
        # bot message was created (= when the request creating it was answered)
        self.enqueued_at: dict[int, float] = {}
        self.sent_at: dict[tuple[int, int], float] = {}
        # (chat_id, message_id) of a copy/forward -> (chat_id, message_id) of its source
        self.copied_from: dict[tuple[int, int], tuple[int, int]] = {}
        self.deleted_topics: list[tuple[int, int]] = []
        # world
        self._users: dict[int, JSON] = {bot_id: self.bot_user}
        self._chats: dict[int, _Chat] = {}
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}
        self._callback_queries: dict[str, JSON] = {}
        self._ids = itertools.count(1)
        self._next_user_id = 5_000_000_001
        self._next_group_id = -1_001_000_000_001
        self._next_basic_group_id = -4_000_000_001
        # updates / long polling
        self._updates: list[JSON] = []
        self._all_updates: dict[int, JSON] = {}  # every update ever queued, by update_id
        self._update_of_message: dict[tuple[int, int], int] = {}
        self._redelivered: set[int] = set()  # below the offset, but to be returned once more
        self._next_update_id = 100_000_001
        self._allowed_updates: list[str] = []
        self._wakeup = asyncio.Event()
        self._poll_generation = 0
        self._closing = False
        # activity tracking, flood control, fault injection
        self._inflight = 0
        self._last_activity = time.monotonic()
        self._flood_chat_rate: float | None = None
        self._flood_overall: _Bucket | None = None
        self._flood_chats: dict[str, _Bucket] = {}
        self._failures: dict[str, list[ApiError]] = {}
        self._fault_rate = 0.0
        self._fault_methods: frozenset[str] = frozenset()
        self._fault_chats: frozenset[str] | None = None
        self._fault_kinds: tuple[str, ...] = FAULT_KINDS
        self._fault_rng = random.Random(0)
        self._fault_turn = 0
        self._latency = 0.0
        self._thawed = asyncio.Event()
        self._thawed.set()
        self._held = 0
        # server
        self._runner: web.AppRunner | None = None
        self._port = 0
        handlers: dict[str, Handler] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "logOut": self._ok,
            "close": self._ok,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "sendMessage": self._send_message,
            "copyMessage": self._copy_message,
            "forwardMessage": self._forward_message,
            "sendContact": self._send_contact,
            "sendChatAction": self._send_chat_action,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "getChat": self._get_chat,
            "getChatMember": self._get_chat_member,
            "getChatAdministrators": self._get_chat_administrators,
            "createForumTopic": self._create_forum_topic,
            "editForumTopic": self._edit_forum_topic,
            "closeForumTopic": self._close_forum_topic,
            "reopenForumTopic": self._reopen_forum_topic,
            "getFile": self._get_file,
            "setMessageReaction": self._set_message_reaction,
            "pinChatMessage": self._pin_chat_message,
            "unpinChatMessage": self._unpin_chat_message,
        }
        for kind in MEDIA_KINDS:
            handlers["send" + kind.capitalize()] = self._media_sender(kind)
        self._handlers = {name.lower(): (name, handler) for name, handler in handlers.items()}

    # ---------------------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        self._closing = False
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        self._closing = True
        self._wake()
        self._thawed.set()  # let held requests finish (or be discarded) before the shutdown
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------------------- world building

    def add_user(
        self,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
        user_id: int | None = None,
    ) -> JSON:
        """Create a User (and the private chat with the bot); returns the User dict."""
        if user_id is None:
            user_id = self._next_user_id
            self._next_user_id += 1
        user: JSON = {"id": user_id, "is_bot": False, "first_name": first_name}
        extra = {"last_name": last_name, "username": username, "language_code": language_code}
        user.update({k: v for k, v in extra.items() if v is not None})
        self._users[user_id] = user
        info = {"id": user_id, "type": "private", "first_name": first_name}
        info.update({k: v for k, v in extra.items() if v is not None and k != "language_code"})
        self._chats[user_id] = _Chat(info=info, members={user_id: "member"})
        return user

    def add_supergroup(
        self,
        title: str,
        *,
        is_forum: bool = False,
        members: Iterable[UserRef] = (),
        admins: Iterable[UserRef] = (),
        owner: UserRef | None = None,
        bot_status: str = "administrator",
        username: str | None = None,
        chat_id: int | None = None,
    ) -> JSON:
        """Create a supergroup (optionally a forum) with the bot in it; returns the Chat dict."""
        if chat_id is None:
            chat_id = self._next_group_id
            self._next_group_id -= 1
        info: JSON = {"id": chat_id, "title": title, "type": "supergroup"}
        if username:
            info["username"] = username
        if is_forum:
            info["is_forum"] = True
        chat = _Chat(info=info, is_forum=is_forum, members={self.bot_user["id"]: bot_status})
        chat.last_message_id = 1 if is_forum else 0  # id 1 is the General topic in forums
        self._add_members(chat, members, admins, owner)
        self._chats[chat_id] = chat
        return info

    def _add_members(
        self,
        chat: _Chat,
        members: Iterable[UserRef],
        admins: Iterable[UserRef],
        owner: UserRef | None,
    ) -> None:
        for ref in members:
            chat.members[self._user_id(ref)] = "member"
        for ref in admins:
            chat.members[self._user_id(ref)] = "administrator"
        if owner is not None:
            chat.members[self._user_id(owner)] = "creator"

    def add_group(
        self,
        title: str,
        *,
        members: Iterable[UserRef] = (),
        admins: Iterable[UserRef] = (),
        owner: UserRef | None = None,
        bot_status: str = "administrator",
        chat_id: int | None = None,
    ) -> JSON:
        """Create a basic group (type "group", no topics) with the bot in it; returns the Chat.

        Its id is negative without the -100 prefix of supergroups; ``migrate_chat`` upgrades it.
        """
        if chat_id is None:
            chat_id = self._next_basic_group_id
            self._next_basic_group_id -= 1
        info: JSON = {"id": chat_id, "title": title, "type": "group"}
        chat = _Chat(info=info, members={self.bot_user["id"]: bot_status})
        self._add_members(chat, members, admins, owner)
        self._chats[chat_id] = chat
        return info

    def migrate_chat(
        self, chat_id: int, *, by: UserRef | None = None, is_forum: bool = False
    ) -> int:
        """Upgrade a basic group to a new supergroup (same title and members) like Telegram.

        Telegram posts ``migrate_to_chat_id`` in the old chat and ``migrate_from_chat_id`` in the
        new one (both delivered as updates, in that order). Afterwards every method on the old
        id fails with 400 "Bad Request: group chat was upgraded to a supergroup chat" and
        ``parameters.migrate_to_chat_id`` (python-telegram-bot raises ``ChatMigrated``).
        ``by`` (default: the owner, else an admin) is the sender of both service messages.
        Returns the new -100... chat id.
        """
        old = self._world_chat(chat_id)
        if old.kind != "group":
            raise ValueError(f"chat {chat_id} is not a basic group")
        if old.migrated_to is not None:
            raise ValueError(f"chat {chat_id} was already upgraded to {old.migrated_to}")
        if by is None:
            by = next(
                (
                    u
                    for s in ("creator", "administrator")
                    for u, st in old.members.items()
                    if st == s and u != self.bot_user["id"]
                ),
                None,
            )
            if by is None:
                raise ValueError(f"chat {chat_id} has no owner or admin to upgrade it; pass by=")
        sender = self._users[self._user_id(by)]
        new_id = self._next_group_id
        self._next_group_id -= 1
        info: JSON = {"id": new_id, "title": old.info["title"], "type": "supergroup"}
        if is_forum:
            info["is_forum"] = True
        new = _Chat(info=info, is_forum=is_forum, members=dict(old.members))
        new.last_message_id = 1 if is_forum else 0
        self._chats[new_id] = new
        old.migrated_to = new_id
        moved = self._create_message(old, sender, {"migrate_to_chat_id": new_id})
        self._enqueue("message", moved)
        created = self._create_message(new, sender, {"migrate_from_chat_id": chat_id})
        self._enqueue("message", created)
        return new_id

    def set_member_status(self, chat_id: int, user_id: UserRef, status: str) -> None:
        """Set a user's (or the bot's) status in a supergroup."""
        if status not in MEMBER_STATUSES:
            raise ValueError(f"unknown chat member status {status!r}")
        self._world_chat(chat_id).members[self._user_id(user_id)] = status

    def user_blocks_bot(self, user: UserRef, blocked: bool = True) -> None:
        """Make sends to the user's private chat fail with 403 like a blocked bot."""
        self._world_chat(self._user_id(user)).blocked_bot = blocked

    def add_forum_topic(
        self, chat_id: int, name: str, *, creator: UserRef | None = None, icon_color: int = 7322096
    ) -> JSON:
        """Create a topic as if a user made it (posts forum_topic_created); returns ForumTopic."""
        chat = self._world_chat(chat_id)
        if not chat.is_forum:
            raise ValueError(f"chat {chat_id} is not a forum")
        sender = self._users[self._user_id(creator)] if creator is not None else self.bot_user
        return self._create_topic(chat, name, icon_color, None, sender)

    def admin_deletes_topic(self, chat_id: int, thread_id: int) -> None:
        """A human admin deletes a forum topic with all its messages (Telegram sends no update).

        Afterwards sends and copies with that ``message_thread_id`` fail with 400 "Bad Request:
        message thread not found"; edits of its messages with "message to edit not found".
        ``sent``/``sent_to`` keep the bot's messages that were in it; ``messages_in`` does not.
        """
        chat = self._world_chat(chat_id)
        if thread_id not in chat.topics:
            raise ValueError(f"no topic {thread_id} in chat {chat_id}")
        del chat.topics[thread_id]
        chat.closed_topics.discard(thread_id)
        chat.locked_topics.discard(thread_id)
        gone = [
            mid
            for mid, msg in chat.messages.items()
            if mid == thread_id or msg.get("message_thread_id") == thread_id
        ]
        for mid in gone:
            del chat.messages[mid]
            chat.bot_message_ids.discard(mid)
        chat.pinned = [mid for mid in chat.pinned if mid in chat.messages]
        self.deleted_topics.append((chat_id, thread_id))

    def admin_closes_topic(self, chat_id: int, thread_id: int, *, by: UserRef) -> JSON:
        """A human admin closes a forum topic; returns the forum_topic_closed service message.

        The service message appears in the topic and is delivered as an update, as Telegram
        does. Afterwards the bot's sends into the topic fail with 400 "Bad Request: TOPIC_CLOSED"
        (what Telegram answers a bot without the right to manage topics; this fake applies it
        to the bot whatever its rights) until the topic is reopened (reopenForumTopic works).
        createForumTopic keeps working.
        """
        chat = self._world_chat(chat_id)
        if thread_id not in chat.topics:
            raise ValueError(f"no topic {thread_id} in chat {chat_id}")
        sender = self._users[self._user_id(by)]
        self._require_participant(chat, sender["id"])
        chat.closed_topics.add(thread_id)
        chat.locked_topics.add(thread_id)
        msg = self._create_message(chat, sender, {"forum_topic_closed": {}}, thread=thread_id)
        self._enqueue("message", msg)
        return msg

    # ---------------------------------------------------------------------------- updates

    def user_sends_text(
        self,
        user: UserRef,
        text: str,
        *,
        entities: list[JSON] | None = None,
        **where: Unpack[Where],
    ) -> JSON:
        """Queue a ``message`` update with a text message; commands get a bot_command entity."""
        found = list(entities or [])
        command = re.match(r"/[A-Za-z0-9_]{1,64}(@[A-Za-z0-9_]{3,32})?", text)
        if command and not any(e.get("type") == "bot_command" for e in found):
            found.insert(0, {"type": "bot_command", "offset": 0, "length": _u16(command[0])})
        return self._user_message(user, {"text": text} | _opt(entities=found), where)

    def user_sends_photo(
        self,
        user: UserRef,
        *,
        caption: str | None = None,
        content: bytes | None = None,
        **where: Unpack[Where],
    ) -> JSON:
        """Queue a photo message (3 PhotoSizes, downloadable through getFile)."""
        sizes = self._new_photo(content if content is not None else _fake_jpeg(2048))
        return self._user_message(user, {"photo": sizes} | _opt(caption=caption), where)

    def user_sends_document(
        self,
        user: UserRef,
        file_name: str,
        content: bytes,
        mime_type: str,
        *,
        caption: str | None = None,
        **where: Unpack[Where],
    ) -> JSON:
        upload = Upload("document", file_name, content, mime_type)
        doc = self._store_upload("document", upload, {}).media
        return self._user_message(user, {"document": doc} | _opt(caption=caption), where)

    def user_sends_voice(
        self,
        user: UserRef,
        *,
        duration: int = 3,
        content: bytes | None = None,
        **where: Unpack[Where],
    ) -> JSON:
        upload = Upload("voice", "voice.oga", content or _FAKE_CONTENT["voice"], "audio/ogg")
        voice = self._store_upload("voice", upload, {"duration": duration}).media
        return self._user_message(user, {"voice": voice}, where)

    def user_sends_video(
        self,
        user: UserRef,
        *,
        duration: int = 5,
        caption: str | None = None,
        content: bytes | None = None,
        **where: Unpack[Where],
    ) -> JSON:
        upload = Upload("video", "video.mp4", content or _FAKE_CONTENT["video"], "video/mp4")
        video = self._store_upload("video", upload, {"duration": duration}).media
        return self._user_message(user, {"video": video} | _opt(caption=caption), where)

    def user_sends_sticker(
        self, user: UserRef, *, emoji: str = "👍", **where: Unpack[Where]
    ) -> JSON:
        upload = Upload("sticker", "sticker.webp", _FAKE_CONTENT["sticker"], "image/webp")
        sticker = self._store_upload("sticker", upload, {"emoji": emoji}).media
        return self._user_message(user, {"sticker": sticker}, where)

    def user_sends_contact(
        self,
        user: UserRef,
        phone_number: str,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        contact_user_id: int | None = None,
        **where: Unpack[Where],
    ) -> JSON:
        """Queue a Contact message; by default the user shares their own contact."""
        sender = self._users[self._user_id(user)]
        if first_name is None:
            first_name, last_name = sender["first_name"], sender.get("last_name")
        contact: JSON = {"phone_number": phone_number, "first_name": first_name}
        contact |= _opt(last_name=last_name)
        contact["user_id"] = contact_user_id if contact_user_id is not None else sender["id"]
        return self._user_message(user, {"contact": contact}, where)

    def user_sends_dice(
        self, user: UserRef, *, emoji: str = "🎲", value: int = 4, **where: Unpack[Where]
    ) -> JSON:
        """Queue a Dice message (what Telegram sends when a user throws 🎲, 🎯, 🏀, ...)."""
        return self._user_message(user, {"dice": {"emoji": emoji, "value": value}}, where)

    def user_pins_message(self, user: UserRef, message: JSON, **where: Unpack[Where]) -> JSON:
        """The user pins a message; Telegram posts (and delivers) a pinned_message service
        message in that chat, in private chats too."""
        sender = self._users[self._user_id(user)]
        chat = self._world_chat(where.get("chat_id") or int(message["chat"]["id"]))
        current = chat.messages.get(int(message["message_id"]))
        if current is None:
            raise ValueError(f"no message {message['message_id']} in chat {chat.id}")
        chat.pinned.append(current["message_id"])
        pinned = {k: copy.deepcopy(v) for k, v in current.items() if k != "reply_to_message"}
        msg = self._create_message(
            chat, sender, {"pinned_message": pinned}, thread=current.get("message_thread_id")
        )
        self._enqueue("message", msg)
        return msg

    def user_sets_auto_delete_timer(
        self, user: UserRef, seconds: int, **where: Unpack[Where]
    ) -> JSON:
        """The user sets the chat's auto-delete timer (a message_auto_delete_timer_changed
        service message)."""
        content = {"message_auto_delete_timer_changed": {"message_auto_delete_time": seconds}}
        return self._user_message(user, content, where)

    def user_taps_button(self, user: UserRef, message: JSON, data: str) -> str:
        """Queue a callback_query for an inline button of a bot message; returns the query id."""
        sender = self._users[self._user_id(user)]
        chat = self._world_chat(int(message["chat"]["id"]))
        current = chat.messages.get(int(message["message_id"]))
        if current is None or current["message_id"] not in chat.bot_message_ids:
            raise AssertionError(f"message {message['message_id']} is not a live bot message")
        self._require_participant(chat, sender["id"])
        rows = (current.get("reply_markup") or {}).get("inline_keyboard", [])
        datas = [b.get("callback_data") for row in rows for b in row]
        if data not in datas:
            raise AssertionError(f"no inline button with callback_data {data!r}; have {datas}")
        query_id = str(4_000_000_000_000_000 + next(self._ids))
        query: JSON = {
            "id": query_id,
            "from": sender,
            "message": current,
            "chat_instance": str(8_000_000_000_000_000 + abs(chat.id) % 10**12),
            "data": data,
        }
        self._callback_queries[query_id] = query
        self._enqueue("callback_query", query)
        return query_id

    @property
    def pending_updates(self) -> int:
        """Number of queued updates not yet confirmed by a getUpdates offset."""
        return len(self._updates)

    def update_id_of(self, message: JSON) -> int:
        """The update_id of the update that delivered a simulated user's message."""
        return self._update_of_message[(int(message["chat"]["id"]), int(message["message_id"]))]

    def redeliver(self, update_id: int) -> None:
        """Deliver an already confirmed update again: same update_id, same content (a duplicate
        delivery, as after a lost confirmation). getUpdates returns it once more even though
        the bot's offset is past it."""
        update = self._all_updates.get(update_id)
        if update is None:
            raise ValueError(f"unknown update {update_id}")
        if any(u["update_id"] == update_id for u in self._updates):
            raise ValueError(f"update {update_id} is still pending")
        self._updates.append(copy.deepcopy(update))
        self._updates.sort(key=lambda u: int(u["update_id"]))
        self._redelivered.add(update_id)
        self._touch()
        self._wake()

    # ---------------------------------------------------------------------------- observing

    def message(self, chat_id: int, message_id: int) -> JSON:
        """The current (possibly edited) state of any message in a chat."""
        return self._world_chat(chat_id).messages[message_id]

    def messages_in(
        self, chat_id: int, *, thread_id: int | None = None, include_service: bool = False
    ) -> list[JSON]:
        """Bot-sent messages still present in a chat (or one forum topic), oldest first."""
        chat = self._chats.get(chat_id)
        if chat is None:
            return []
        result = []
        for mid in sorted(chat.bot_message_ids):
            msg = chat.messages[mid]
            if thread_id is not None and msg.get("message_thread_id") != thread_id:
                continue
            if include_service or any(key in msg for key in CONTENT_KEYS):
                result.append(msg)
        return result

    def topics(self, chat_id: int) -> list[JSON]:
        return list(self._world_chat(chat_id).topics.values())

    def sent_to(self, chat_id: int, *, thread_id: int | None = None) -> list[JSON]:
        """Every message the bot created in a chat (or topic), oldest first, including service
        messages and messages deleted since (e.g. with their topic); edits applied."""
        return [
            m
            for m in self.sent
            if m["chat"]["id"] == chat_id
            and (thread_id is None or m.get("message_thread_id") == thread_id)
        ]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Poll ``predicate`` every 10 ms; raise AssertionError with recent requests on timeout."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s\n{self._describe()}")
            await asyncio.sleep(0.01)

    async def wait_for_messages(
        self,
        chat_id: int,
        count: int,
        *,
        thread_id: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[JSON]:
        """Wait until the bot has at least ``count`` messages in the chat/topic; return them."""
        await self.wait_for(
            lambda: len(self.messages_in(chat_id, thread_id=thread_id)) >= count, timeout
        )
        return self.messages_in(chat_id, thread_id=thread_id)

    async def wait_idle(self, quiet: float = 0.3, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until no update is pending and no (non-polling) request for ``quiet`` s."""

        def idle() -> bool:
            silent = time.monotonic() - self._last_activity >= quiet
            return silent and self._inflight == 0 and not self._updates

        await self.wait_for(idle, timeout)

    def flood_limit(
        self, per_chat_per_second: float | None = None, overall_per_second: float | None = None
    ) -> None:
        """Answer sending methods with 429 (retry_after=1) above these rates; None disables."""
        now = time.monotonic()
        self._flood_chat_rate = per_chat_per_second
        self._flood_chats.clear()
        self._flood_overall = None
        if overall_per_second is not None:
            self._flood_overall = _Bucket(overall_per_second, max(1.0, overall_per_second), now)

    def fail_next(
        self,
        method: str,
        description: str = "Internal Server Error",
        *,
        error_code: int = 500,
        parameters: JSON | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with the given error."""
        errors = self._failures.setdefault(method.lower(), [])
        errors.extend(ApiError(error_code, description, parameters) for _ in range(times))

    def set_latency(self, seconds: float) -> None:
        """Make every method except getUpdates wait this long before it is carried out (and
        answered); 0 turns it off."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self._latency = seconds

    def inject_faults(
        self,
        rate: float,
        *,
        methods: Iterable[str] = ("sendMessage", "copyMessage"),
        kinds: Iterable[str] = FAULT_KINDS,
        seed: int | None = 0,
        chats: Iterable[int] | None = None,
    ) -> None:
        """Make a fraction ``rate`` of the calls of ``methods`` (into ``chats`` only, when
        given) fail *before* they are carried out: which calls fail is drawn at random
        (reproducibly with ``seed``), the ``kinds`` are taken in turn (so three faults already
        show each kind once):

        * ``"429"``: ``Too Many Requests: retry after 1`` with ``parameters.retry_after`` 1;
        * ``"500"``: ``Internal Server Error``;
        * ``"drop"``: the connection is closed without any HTTP response (a network error).

        Counted in ``fault_counts`` and listed in ``faults``; ``clear_faults`` stops them.
        """
        chosen = tuple(kinds)
        if not chosen or not set(chosen) <= set(FAULT_KINDS):
            raise ValueError(f"fault kinds must be among {FAULT_KINDS}")
        if not 0 <= rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        self._fault_rate = rate
        self._fault_methods = frozenset(m.lower() for m in methods)
        self._fault_chats = None if chats is None else frozenset(str(c) for c in chats)
        self._fault_kinds = chosen
        self._fault_rng = random.Random(seed)
        self._fault_turn = 0

    def clear_faults(self) -> None:
        self._fault_rate = 0.0

    def freeze_sends(self) -> None:
        """Hold every request except getUpdates before it is carried out, until
        ``thaw_sends``. getUpdates keeps working, so the bot keeps receiving updates."""
        self._thawed.clear()

    def thaw_sends(self) -> None:
        """Release the held requests. A held request whose client has gone away (its
        connection closed, e.g. the bot was killed) is discarded without being carried out
        (listed in ``discarded``); the others run now."""
        self._thawed.set()

    @property
    def held_requests(self) -> int:
        """Requests currently held by ``freeze_sends``."""
        return self._held

    def _describe(self) -> str:
        lines = [f"  {method} {_short(params)}" for method, params in self.requests[-8:]]
        text = "last requests:\n" + ("\n".join(lines) or "  (none)")
        if self.internal_errors:
            text += "\ninternal errors of the fake server:\n  " + "\n  ".join(self.internal_errors)
        return text

    # ---------------------------------------------------------------------------- HTTP layer

    async def _handle_method(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _error_response(ApiError(401, "Unauthorized"))
        entry = self._handlers.get(request.match_info["method"].lower())
        if entry is None:
            # Telegram answers 404 too, which PTB turns into InvalidToken: leave a clear trace.
            self.internal_errors.append(f"unsupported method {request.match_info['method']!r}")
            return _error_response(ApiError(404, "Not Found"))
        name, handler = entry
        polling = name == "getUpdates"
        if not polling:
            self._inflight += 1
            self._touch()
        try:
            params = await self._read_params(request)
            if not polling and not await self._delay(request, name, params):
                return web.Response(status=499)  # nobody is there to read it
            self.requests.append((name, params.values))
            if self._draw_fault(name, params) == "drop":
                if request.transport is not None:
                    request.transport.close()  # no HTTP response at all
                return web.Response(status=499)
            failures = self._failures.get(name.lower())
            if failures:
                raise failures.pop(0)
            self._check_flood(name, params)
            result = await handler(params)
        except ApiError as exc:
            return _error_response(exc)
        except Exception as exc:  # a bug in the fake: report it loudly but keep serving
            self.internal_errors.append(f"{name}: {exc!r}")
            return _error_response(ApiError(500, f"Internal Server Error: {exc!r}"))
        finally:
            if not polling:
                self._inflight -= 1
                self._touch()
        return web.json_response({"ok": True, "result": result})

    async def _delay(self, request: web.Request, name: str, params: _Params) -> bool:
        """Latency, then the freeze; False when a held request's client has gone away."""
        if self._latency > 0:
            await asyncio.sleep(self._latency)
        if self._thawed.is_set():
            return True
        self._held += 1
        try:
            await self._thawed.wait()
        finally:
            self._held -= 1
        if _client_gone(request):
            self.discarded.append((name, params.values))
            return False
        return True

    def _draw_fault(self, name: str, params: _Params) -> str | None:
        """Raise (or return "drop" for) an injected fault for this call, if one is drawn."""
        if self._fault_rate <= 0 or name.lower() not in self._fault_methods:
            return None
        if self._fault_chats is not None and params.text("chat_id") not in self._fault_chats:
            return None
        if self._fault_rng.random() >= self._fault_rate:
            return None
        kind = self._fault_kinds[self._fault_turn % len(self._fault_kinds)]
        self._fault_turn += 1
        self.fault_counts[kind] += 1
        self.faults.append((name, kind, params.values))
        if kind == "429":
            raise ApiError(429, "Too Many Requests: retry after 1", {"retry_after": 1})
        if kind == "500":
            raise ApiError(500, "Internal Server Error")
        return kind

    async def _handle_file(self, request: web.Request) -> web.Response:
        stored = self._files_by_path.get(request.match_info["path"])
        if request.match_info["token"] != self.token or stored is None:
            return _error_response(ApiError(404, "Not Found"))
        return web.Response(body=stored.content, content_type="application/octet-stream")

    async def _read_params(self, request: web.Request) -> _Params:
        values: dict[str, Any] = dict(request.query)
        if request.content_type == "multipart/form-data":
            async for part in await request.multipart():
                if not isinstance(part, BodyPartReader) or part.name is None:
                    continue
                if part.filename is not None:
                    content_type = part.headers.get("Content-Type", "application/octet-stream")
                    data = bytes(await part.read(decode=False))
                    values[part.name] = Upload(part.name, part.filename, data, content_type)
                else:
                    values[part.name] = await part.text()
        elif request.content_type == "application/json" and request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                raise _bad("can't parse JSON encoded request parameters") from None
            if not isinstance(body, dict):
                raise _bad("can't parse JSON encoded request parameters")
            values.update(body)
        elif request.can_read_body:
            form = await request.post()
            values.update({k: v for k, v in form.items() if isinstance(v, str)})
        for name in JSON_PARAMS & values.keys():
            if isinstance(values[name], str):
                try:
                    values[name] = json.loads(values[name]) if values[name] else None
                except ValueError:
                    what = "reply keyboard markup" if name == "reply_markup" else name
                    raise _bad(f"can't parse {what} JSON object") from None
        return _Params(values)

    def _check_flood(self, method: str, params: _Params) -> None:
        lowered = method.lower()
        if not lowered.startswith(("send", "copymessage", "forwardmessage", "editmessage")):
            return
        if lowered == "sendchataction" or (
            self._flood_chat_rate is None and self._flood_overall is None
        ):
            return
        now = time.monotonic()
        buckets = [self._flood_overall] if self._flood_overall is not None else []
        chat_key = params.text("chat_id")
        if self._flood_chat_rate is not None and chat_key is not None:
            bucket = self._flood_chats.setdefault(
                chat_key, _Bucket(self._flood_chat_rate, max(1.0, self._flood_chat_rate), now)
            )
            buckets.append(bucket)
        for bucket in buckets:
            bucket.refill(now)
        if all(bucket.tokens >= 1 for bucket in buckets):
            for bucket in buckets:
                bucket.tokens -= 1
            return
        self.flood_errors += 1
        raise ApiError(429, "Too Many Requests: retry after 1", {"retry_after": 1})

    def _touch(self) -> None:
        self._last_activity = time.monotonic()

    def _wake(self) -> None:
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    def _enqueue(self, kind: str, payload: JSON) -> None:
        update_id = self._next_update_id
        update = {"update_id": update_id, kind: copy.deepcopy(payload)}
        self._next_update_id += 1
        self._updates.append(update)
        self._all_updates[update_id] = update
        self.enqueued_at[update_id] = time.monotonic()
        if kind == "message":
            self._update_of_message[(int(payload["chat"]["id"]), int(payload["message_id"]))] = (
                update_id
            )
        self._touch()
        self._wake()

    # ---------------------------------------------------------------------------- helpers

    def _user_id(self, ref: UserRef | None) -> int:
        user_id = int(ref["id"]) if isinstance(ref, dict) else ref
        if user_id is None or user_id not in self._users:
            raise ValueError(f"unknown user {ref!r}; create it with add_user()")
        return user_id

    def _world_chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            raise ValueError(f"unknown chat {chat_id}")
        return chat

    def _require_participant(self, chat: _Chat, user_id: int) -> None:
        if chat.is_private:
            if chat.id != user_id:
                raise ValueError(f"user {user_id} cannot write in the private chat {chat.id}")
        elif chat.members.get(user_id, "left") in ("left", "kicked"):
            raise ValueError(f"user {user_id} is not a member of chat {chat.id}")

    def _user_message(self, user: UserRef, content: JSON, where: Where) -> JSON:
        sender = self._users[self._user_id(user)]
        chat = self._world_chat(where.get("chat_id") or sender["id"])
        if chat.migrated_to is not None:
            raise ValueError(f"chat {chat.id} was upgraded to the supergroup {chat.migrated_to}")
        self._require_participant(chat, sender["id"])
        reply_to = None
        if (reply_id := where.get("reply_to_message_id")) is not None:
            reply_to = chat.messages.get(reply_id)
            if reply_to is None:
                raise ValueError(f"no message {reply_id} in chat {chat.id}")
        thread_id = where.get("message_thread_id") if chat.is_forum else None
        if thread_id is not None and thread_id not in chat.topics:
            raise ValueError(f"no topic {thread_id} in chat {chat.id}")
        if thread_id is None and reply_to is not None and chat.is_forum:
            thread_id = reply_to.get("message_thread_id")
        msg = self._create_message(chat, sender, content, thread=thread_id, reply_to=reply_to)
        self._enqueue("message", msg)
        return msg

    def _create_message(
        self,
        chat: _Chat,
        sender: JSON,
        content: JSON,
        *,
        thread: int | None = None,
        reply_to: JSON | None = None,
        message_id: int | None = None,
    ) -> JSON:
        mid = message_id if message_id is not None else chat.next_message_id()
        msg: JSON = {"message_id": mid, "from": sender, "chat": chat.info, "date": int(time.time())}
        if thread is not None:
            msg["message_thread_id"] = thread
            msg["is_topic_message"] = True
            # Telegram quirk: a topic message that is not a reply "replies" to the topic's
            # forum_topic_created service message.
            if reply_to is None and thread != mid and thread in chat.messages:
                reply_to = chat.messages[thread]
        if reply_to is not None:
            msg["reply_to_message"] = {
                k: v for k, v in copy.deepcopy(reply_to).items() if k != "reply_to_message"
            }
        msg.update(content)
        chat.messages[mid] = msg
        if sender["id"] == self.bot_user["id"]:
            chat.bot_message_ids.add(mid)
            self.sent.append(msg)
            self.sent_at[(chat.id, mid)] = time.monotonic()
        return msg

    def _chat(self, params: _Params, name: str = "chat_id") -> _Chat:
        raw = params.obj(name)
        if raw is None or raw == "":
            raise _bad(f"{name} is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            for candidate in self._chats.values():
                if str(candidate.info.get("username", "")).lower() == raw[1:].lower():
                    return candidate
            raise _bad("chat not found")
        try:
            chat_id = int(raw)
        except (TypeError, ValueError):
            raise _bad("chat not found") from None
        chat = self._chats.get(chat_id)
        if chat is None:
            raise _bad("chat not found")
        if chat.migrated_to is not None:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrated_to},
            )
        return chat

    def _writable_chat(self, params: _Params) -> _Chat:
        chat = self._chat(params)
        if chat.is_private and chat.blocked_bot:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        status = chat.members.get(self.bot_user["id"], "member")
        if status == "kicked":
            raise ApiError(403, f"Forbidden: bot was kicked from the {chat.kind} chat")
        if status == "left":
            raise ApiError(403, f"Forbidden: bot is not a member of the {chat.kind} chat")
        return chat

    def _bot_is_admin(self, chat: _Chat) -> bool:
        return chat.members.get(self.bot_user["id"]) in ("creator", "administrator")

    def _formatted(
        self, params: _Params, text_key: str, entities_key: str, *, required: bool
    ) -> tuple[str, list[JSON]]:
        """Parse text/caption according to parse_mode or explicit entities, then trim."""
        text = params.text(text_key) or ""
        given = params.obj(entities_key)
        mode = (params.text("parse_mode") or "").lower()
        if given:
            if not isinstance(given, list) or not all(isinstance(e, dict) for e in given):
                raise _bad(f"can't parse {entities_key} JSON object")
            plain, entities = text, [dict(e) for e in given]
        elif mode:
            parsers: dict[str, Callable[[str], tuple[str, list[JSON]]]] = {
                "html": lambda t: parse_html(t, strict_entities=self.strict_html_entities),
                "markdownv2": parse_markdown_v2,
                "markdown": parse_markdown,
            }
            if mode not in parsers:
                raise _bad("unsupported parse_mode")
            try:
                plain, entities = parsers[mode](text)
            except EntityParseError as exc:
                raise _bad(f"can't parse entities: {exc}") from None
        else:
            plain, entities = text, []
        plain, entities = _trim(plain, entities)
        for entity in entities:
            match = re.fullmatch(r"tg://user\?id=(\d+)", str(entity.get("url", "")))
            if match and int(match.group(1)) in self._users:
                entity.pop("url")
                entity.update(type="text_mention", user=self._users[int(match.group(1))])
        if text_key == "text":
            if required and not plain:
                raise _bad("message text is empty")
            if len(plain) > MAX_TEXT_LENGTH:
                raise _bad("message is too long")
        elif len(plain) > MAX_CAPTION_LENGTH:
            raise _bad("message caption is too long")
        return plain, entities

    def _text_content(self, params: _Params, *, required: bool = True) -> JSON:
        text, entities = self._formatted(params, "text", "entities", required=required)
        return {"text": text} | ({"entities": entities} if entities else {})

    def _caption_content(self, params: _Params) -> JSON:
        caption, entities = self._formatted(params, "caption", "caption_entities", required=False)
        if not caption:
            return {}
        return {"caption": caption} | ({"caption_entities": entities} if entities else {})

    def _placement(self, chat: _Chat, params: _Params) -> tuple[int | None, JSON | None]:
        """Resolve message_thread_id and reply_parameters/reply_to_message_id."""
        thread = params.integer("message_thread_id") if chat.is_forum else None
        if thread is not None:
            if thread not in chat.topics:
                raise _bad("message thread not found")
            if thread in chat.closed_topics and (
                thread in chat.locked_topics or not self._bot_is_admin(chat)
            ):
                raise _bad("TOPIC_CLOSED")
        reply = params.obj("reply_parameters")
        if reply is None and params.has("reply_to_message_id"):
            reply = {
                "message_id": params.integer("reply_to_message_id"),
                "allow_sending_without_reply": params.flag("allow_sending_without_reply"),
            }
        if not reply:
            return thread, None
        if not isinstance(reply, dict) or "message_id" not in reply:
            raise _bad("can't parse reply parameters JSON object")
        target = chat.messages.get(int(reply["message_id"]))
        if target is None:
            if reply.get("allow_sending_without_reply") in (True, "true"):
                return thread, None
            raise _bad("message to be replied not found")
        if thread is None and chat.is_forum:
            thread = target.get("message_thread_id")
        return thread, target

    def _reply_markup(self, params: _Params) -> JSON | None:
        markup = params.obj("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        rows = markup.get("inline_keyboard")
        if rows is None:
            return markup
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
        for button in itertools.chain.from_iterable(rows):
            if not isinstance(button, dict) or "text" not in button:
                raise _bad("can't parse inline keyboard button: Text must be a String")
            if not _BUTTON_ACTIONS & button.keys():
                raise _bad("text buttons are unallowed in the inline keyboard")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA_BYTES:
                raise _bad("BUTTON_DATA_INVALID")
            if "url" in button and _normalize_url(str(button["url"])) is None:
                raise _bad(
                    f"inline keyboard button URL '{button['url']}' is invalid: Wrong HTTP URL"
                )
        return markup

    def _bot_send(self, chat: _Chat, params: _Params, content: JSON) -> JSON:
        thread, reply_to = self._placement(chat, params)
        markup = self._reply_markup(params)
        msg = self._create_message(chat, self.bot_user, content, thread=thread, reply_to=reply_to)
        if params.flag("protect_content"):
            msg["has_protected_content"] = True
        if markup is not None:
            self.reply_markups[(chat.id, msg["message_id"])] = markup
            if "inline_keyboard" in markup:
                msg["reply_markup"] = markup
        return msg

    def _new_file(self, kind: str, content: bytes, ext: str = "") -> _StoredFile:
        n = next(self._ids)
        folder, default_ext = _FILE_DIRS[kind]
        suffix = ext or default_ext
        path = f"{folder}/file_{n}" + (f".{suffix}" if suffix else "")
        stored = _StoredFile(f"fake-{kind}-{n:06d}", f"uniq{n:06d}", kind, content, path, None)
        self._files[stored.file_id] = stored
        self._files_by_path[path] = stored
        return stored

    def _new_photo(self, content: bytes) -> list[JSON]:
        sizes: list[JSON] = []
        files = []
        for width, height in ((90, 68), (320, 240), (1280, 960)):
            stored = self._new_file("photo", content)
            files.append(stored)
            sizes.append(
                {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
                | {"file_size": len(content), "width": width, "height": height}
            )
        for stored in files:
            stored.media = sizes
        return sizes

    def _store_upload(self, kind: str, upload: Upload, extra: JSON) -> _StoredFile:
        if kind == "photo":
            return self._files[self._new_photo(upload.content)[0]["file_id"]]
        ext = upload.filename.rsplit(".", 1)[-1] if "." in upload.filename else ""
        stored = self._new_file(kind, upload.content, ext)
        media: JSON = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
        media["file_size"] = len(upload.content)
        if kind in ("document", "video", "audio", "animation"):
            media["file_name"] = upload.filename
        if kind != "sticker":
            default_mime = {"voice": "audio/ogg", "video": "video/mp4", "animation": "video/mp4"}
            media["mime_type"] = default_mime.get(kind) or upload.content_type
        if kind in ("voice", "video", "audio", "animation"):
            media["duration"] = int(extra.get("duration") or 1)
        if kind in ("video", "animation"):
            media |= {
                "width": int(extra.get("width") or 640),
                "height": int(extra.get("height") or 360),
            }
        if kind == "audio":
            media |= {k: extra[k] for k in ("performer", "title") if extra.get(k)}
        if kind == "sticker":
            media |= {"type": "regular", "width": 512, "height": 512}
            media |= {"is_animated": False, "is_video": False}
            media |= {"emoji": extra["emoji"]} if extra.get("emoji") else {}
        stored.media = media
        return stored

    def _input_file(self, params: _Params, kind: str) -> _StoredFile:
        """Resolve an InputFile parameter: multipart upload, attach://, file_id or URL."""
        value = params.obj(kind)
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.obj(value.removeprefix("attach://"))
        extra = {k: params.text(k) for k in ("duration", "width", "height", "performer", "title")}
        extra["emoji"] = params.text("emoji")
        if isinstance(value, Upload):
            return self._store_upload(kind, value, extra)
        if not isinstance(value, str) or not value:
            raise _bad(f"there is no {kind} in the request")
        stored = self._files.get(value)
        if stored is not None:
            if stored.kind != kind:
                raise _bad(
                    f"can't use file of type {stored.kind.capitalize()} as {kind.capitalize()}"
                )
            return stored
        if re.match(r"https?://\S+\.\S+", value):
            name = value.rstrip("/").rsplit("/", 1)[-1] or kind
            content = _fake_jpeg(1024) if kind == "photo" else _FAKE_CONTENT[kind]
            return self._store_upload(
                kind, Upload(kind, name, content, "application/octet-stream"), extra
            )
        raise _bad("wrong file identifier/HTTP URL specified")

    def _editable(self, params: _Params) -> tuple[_Chat, JSON]:
        if params.has("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID")
        chat = self._chat(params)
        msg = chat.messages.get(params.require_int("message_id"))
        if msg is None:
            raise _bad("message to edit not found")
        if msg["message_id"] not in chat.bot_message_ids:
            raise _bad("message can't be edited")
        return chat, msg

    def _apply_edit(self, chat: _Chat, msg: JSON, content: JSON, markup: JSON | None) -> JSON:
        """Replace the given content keys and the inline keyboard (absent = removed)."""
        inline = markup if markup is not None and "inline_keyboard" in markup else None
        new = {k: v for k, v in msg.items() if k not in content and k != "reply_markup"}
        new.update({k: v for k, v in content.items() if v not in (None, [])})
        if inline is not None:
            new["reply_markup"] = inline
        compare = ("text", "entities", "caption", "caption_entities", "reply_markup")
        if all(new.get(k) == msg.get(k) for k in compare):
            raise _bad(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        msg.clear()
        msg.update(new)
        msg["edit_date"] = int(time.time())
        if inline is not None:
            self.reply_markups[(chat.id, msg["message_id"])] = inline
        return msg

    def _create_topic(
        self, chat: _Chat, name: str, color: int, emoji_id: str | None, sender: JSON
    ) -> JSON:
        mid = chat.next_message_id()
        topic: JSON = {"message_thread_id": mid, "name": name, "icon_color": color}
        if emoji_id:
            topic["icon_custom_emoji_id"] = emoji_id
        chat.topics[mid] = topic
        created = {k: v for k, v in topic.items() if k != "message_thread_id"}
        self._create_message(
            chat, sender, {"forum_topic_created": created}, thread=mid, message_id=mid
        )
        return topic

    def _topic(self, params: _Params) -> tuple[_Chat, int]:
        chat = self._writable_chat(params)
        if not chat.is_forum:
            raise _bad("the chat is not a forum")
        thread = params.require_int("message_thread_id")
        if thread not in chat.topics:
            raise _bad("message thread not found")
        if not self._bot_is_admin(chat):
            raise _bad("not enough rights to manage topics in the chat")
        return chat, thread

    def _chat_full_info(self, chat: _Chat) -> JSON:
        gifts = ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription")
        info = dict(chat.info) | {"accent_color_id": 0, "max_reaction_count": 11}
        info["accepted_gift_types"] = dict.fromkeys((*gifts, "gifts_from_channels"), False)
        if chat.pinned and chat.pinned[-1] in chat.messages:
            info["pinned_message"] = chat.messages[chat.pinned[-1]]
        return info

    def _member(self, chat: _Chat, user_id: int) -> JSON:
        user = self._users[user_id]
        status = chat.members.get(user_id, "left")
        if chat.is_private:
            status = "member" if user_id in (chat.id, self.bot_user["id"]) else "left"
        member: JSON = {"status": status, "user": user}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            member |= {"can_be_edited": False, "is_anonymous": False}
            member |= {f"can_{right}": right != "promote_members" for right in _ADMIN_RIGHTS}
        elif status == "restricted":
            member |= {"is_member": True, "until_date": 0, "can_edit_tag": False}
            member |= dict.fromkeys((f"can_{right}" for right in _RESTRICTED_RIGHTS), False)
        elif status == "kicked":
            member["until_date"] = 0
        return member

    # ---------------------------------------------------------------------------- methods

    async def _ok(self, params: _Params) -> bool:
        return True

    async def _get_me(self, params: _Params) -> JSON:
        return self.bot_user | {
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: _Params) -> list[JSON]:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = params.integer("offset") or 0
        limit = min(max(params.integer("limit") or 100, 1), 100)
        timeout = max(params.number("timeout") or 0.0, 0.0)
        allowed = params.obj("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed]
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake()  # terminates an older long poll with 409 like Telegram
        if offset < 0:
            self._updates = self._updates[offset:]
        elif offset > 0:
            before = len(self._updates)
            self._updates = [
                u
                for u in self._updates
                if u["update_id"] >= offset or u["update_id"] in self._redelivered
            ]
            if len(self._updates) != before:
                self._touch()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._updates = [u for u in self._updates if self._is_allowed(u)]
            if self._updates:
                batch = self._updates[:limit]
                self._redelivered -= {int(u["update_id"]) for u in batch}
                return copy.deepcopy(batch)
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing:
                return []
            event = self._wakeup
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one "
                    "bot instance is running",
                )

    def _is_allowed(self, update: JSON) -> bool:
        kind = next(k for k in update if k != "update_id")
        if self._allowed_updates:
            return kind in self._allowed_updates
        return kind not in OPT_IN_UPDATES

    async def _set_webhook(self, params: _Params) -> bool:
        url = params.text("url") or ""
        if not url:
            self.webhook = None
            return True
        if not url.startswith("https://"):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook = dict(params.values)
        if params.flag("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _delete_webhook(self, params: _Params) -> bool:
        self.webhook = None
        if params.flag("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _get_webhook_info(self, params: _Params) -> JSON:
        info: JSON = {"url": "", "has_custom_certificate": False}
        if self.webhook is not None:
            info["url"] = self.webhook["url"]
            if isinstance(self.webhook.get("allowed_updates"), list):
                info["allowed_updates"] = self.webhook["allowed_updates"]
        return info | {"pending_update_count": len(self._updates)}

    def _commands_key(self, params: _Params) -> tuple[str, str]:
        scope = params.obj("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), params.text("language_code") or ""

    async def _set_my_commands(self, params: _Params) -> bool:
        commands = params.obj("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad("can't parse commands JSON object")
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad("command description must be non-empty")
        self.commands[self._commands_key(params)] = commands
        return True

    async def _get_my_commands(self, params: _Params) -> list[JSON]:
        return self.commands.get(self._commands_key(params), [])

    async def _delete_my_commands(self, params: _Params) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    async def _send_message(self, params: _Params) -> JSON:
        chat = self._writable_chat(params)
        return self._bot_send(chat, params, self._text_content(params))

    def _media_sender(self, kind: str) -> Handler:
        async def send(params: _Params) -> JSON:
            chat = self._writable_chat(params)
            caption = {} if kind == "sticker" else self._caption_content(params)
            stored = self._input_file(params, kind)
            content: JSON = {kind: stored.media}
            if kind == "animation":
                content["document"] = stored.media
            if params.flag("has_spoiler"):
                content["has_media_spoiler"] = True
            return self._bot_send(chat, params, content | caption)

        return send

    async def _send_contact(self, params: _Params) -> JSON:
        chat = self._writable_chat(params)
        contact = {
            "phone_number": params.text("phone_number"),
            "first_name": params.text("first_name"),
        }
        if not contact["phone_number"] or not contact["first_name"]:
            raise _bad("phone number and first name must be non-empty")
        last = params.text("last_name")
        return self._bot_send(
            chat, params, {"contact": contact | ({"last_name": last} if last else {})}
        )

    def _source_message(self, params: _Params, action: str) -> JSON:
        source_chat = self._chat(params, "from_chat_id")
        source = source_chat.messages.get(params.require_int("message_id"))
        if source is None:
            raise _bad(f"message to {action} not found")
        if not any(key in source for key in CONTENT_KEYS):
            raise _bad(f"message can't be {'copied' if action == 'copy' else 'forwarded'}")
        if source.get("has_protected_content"):
            raise _bad("message has protected content and can't be forwarded")
        return source

    async def _copy_message(self, params: _Params) -> JSON:
        chat = self._writable_chat(params)
        source = self._source_message(params, "copy")
        content = {k: copy.deepcopy(source[k]) for k in CONTENT_KEYS if k in source}
        if "caption" in params.values and "text" not in content:
            content.pop("caption", None)
            content.pop("caption_entities", None)
            content |= self._caption_content(params)
        msg = self._bot_send(chat, params, content)
        self.copied_from[(chat.id, msg["message_id"])] = (
            source["chat"]["id"],
            source["message_id"],
        )
        return {"message_id": msg["message_id"]}

    async def _forward_message(self, params: _Params) -> JSON:
        chat = self._writable_chat(params)
        source = self._source_message(params, "forward")
        content = {k: copy.deepcopy(source[k]) for k in CONTENT_KEYS if k in source}
        origin = {"type": "user", "sender_user": source["from"], "date": source["date"]}
        msg = self._bot_send(chat, params, {"forward_origin": origin} | content)
        self.copied_from[(chat.id, msg["message_id"])] = (
            source["chat"]["id"],
            source["message_id"],
        )
        return msg

    async def _send_chat_action(self, params: _Params) -> bool:
        chat = self._writable_chat(params)
        self._placement(chat, params)
        if params.text("action") not in CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    async def _edit_message_text(self, params: _Params) -> JSON:
        chat, msg = self._editable(params)
        if "text" not in msg:
            raise _bad("there is no text in the message to edit")
        content: JSON = {"entities": None} | self._text_content(params)
        return self._apply_edit(chat, msg, content, self._reply_markup(params))

    async def _edit_message_caption(self, params: _Params) -> JSON:
        chat, msg = self._editable(params)
        if not any(kind in msg for kind in MEDIA_KINDS):
            raise _bad("there is no caption in the message to edit")
        content: JSON = {"caption": None, "caption_entities": None}
        content |= self._caption_content(params)
        return self._apply_edit(chat, msg, content, self._reply_markup(params))

    async def _edit_message_reply_markup(self, params: _Params) -> JSON:
        chat, msg = self._editable(params)
        return self._apply_edit(chat, msg, {}, self._reply_markup(params))

    async def _delete_message(self, params: _Params) -> bool:
        chat = self._chat(params)
        mid = params.require_int("message_id")
        if mid not in chat.messages:
            raise _bad("message to delete not found")
        own = mid in chat.bot_message_ids
        if not chat.is_private and not own and not self._bot_is_admin(chat):
            raise _bad("message can't be deleted")
        del chat.messages[mid]
        chat.bot_message_ids.discard(mid)
        self.deleted.append((chat.id, mid))
        return True

    async def _answer_callback_query(self, params: _Params) -> bool:
        query_id = params.text("callback_query_id") or ""
        if query_id not in self._callback_queries or query_id in self.callback_answers:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        if len(params.text("text") or "") > 200:
            raise _bad("MESSAGE_TOO_LONG")
        self.callback_answers[query_id] = dict(params.values)
        return True

    async def _get_chat(self, params: _Params) -> JSON:
        return self._chat_full_info(self._chat(params))

    async def _get_chat_member(self, params: _Params) -> JSON:
        chat = self._chat(params)
        user_id = params.require_int("user_id")
        if user_id not in self._users:
            raise _bad("user not found")
        return self._member(chat, user_id)

    async def _get_chat_administrators(self, params: _Params) -> list[JSON]:
        chat = self._chat(params)
        if chat.is_private:
            raise _bad("there are no administrators in the private chat")
        admins = [u for u, s in chat.members.items() if s in ("creator", "administrator")]
        return [self._member(chat, user_id) for user_id in admins]

    async def _create_forum_topic(self, params: _Params) -> JSON:
        chat = self._writable_chat(params)
        if not chat.is_forum:
            raise _bad("the chat is not a forum")
        if not self._bot_is_admin(chat):
            raise _bad("not enough rights to create a topic")
        name = params.text("name") or ""
        if not 1 <= len(name) <= 128:
            raise _bad("TOPIC_TITLE_EMPTY" if not name else "TOPIC_TITLE_TOO_LONG")
        color = params.integer("icon_color") or TOPIC_COLORS[0]
        if color not in TOPIC_COLORS:
            raise _bad("TOPIC_ICON_COLOR_INVALID")
        return self._create_topic(
            chat, name, color, params.text("icon_custom_emoji_id"), self.bot_user
        )

    async def _edit_forum_topic(self, params: _Params) -> bool:
        chat, thread = self._topic(params)
        topic = chat.topics[thread]
        changes: JSON = {}
        if params.has("name") and params.text("name") != topic["name"]:
            changes["name"] = params.text("name")
        emoji = params.text("icon_custom_emoji_id")
        if emoji is not None and emoji != topic.get("icon_custom_emoji_id", ""):
            changes["icon_custom_emoji_id"] = emoji
        if not changes:
            raise _bad("TOPIC_NOT_MODIFIED")
        topic.update(changes)
        if topic.get("icon_custom_emoji_id") == "":
            del topic["icon_custom_emoji_id"]
        self._create_message(chat, self.bot_user, {"forum_topic_edited": changes}, thread=thread)
        return True

    async def _close_forum_topic(self, params: _Params) -> bool:
        chat, thread = self._topic(params)
        if thread in chat.closed_topics:
            raise _bad("TOPIC_NOT_MODIFIED")
        chat.closed_topics.add(thread)
        self._create_message(chat, self.bot_user, {"forum_topic_closed": {}}, thread=thread)
        return True

    async def _reopen_forum_topic(self, params: _Params) -> bool:
        chat, thread = self._topic(params)
        if thread not in chat.closed_topics:
            raise _bad("TOPIC_NOT_MODIFIED")
        chat.closed_topics.discard(thread)
        chat.locked_topics.discard(thread)
        self._create_message(chat, self.bot_user, {"forum_topic_reopened": {}}, thread=thread)
        return True

    async def _get_file(self, params: _Params) -> JSON:
        stored = self._files.get(params.text("file_id") or "")
        if stored is None:
            raise _bad("invalid file_id")
        if len(stored.content) > MAX_DOWNLOAD_SIZE:
            raise _bad("file is too big")
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id} | {
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }

    async def _set_message_reaction(self, params: _Params) -> bool:
        chat = self._chat(params)
        mid = params.require_int("message_id")
        if mid not in chat.messages:
            raise _bad("message to react not found")
        reaction = params.obj("reaction") or []
        if not isinstance(reaction, list):
            raise _bad("can't parse reaction JSON object")
        self.reactions[(chat.id, mid)] = reaction
        return True

    async def _pin_chat_message(self, params: _Params) -> bool:
        chat = self._writable_chat(params)
        mid = params.require_int("message_id")
        if mid not in chat.messages:
            raise _bad("message to pin not found")
        if not chat.is_private and not self._bot_is_admin(chat):
            raise _bad("not enough rights to manage pinned messages in the chat")
        chat.pinned.append(mid)
        if not chat.is_private:
            pinned = {k: v for k, v in chat.messages[mid].items() if k != "reply_to_message"}
            self._create_message(
                chat,
                self.bot_user,
                {"pinned_message": copy.deepcopy(pinned)},
                thread=chat.messages[mid].get("message_thread_id"),
            )
        return True

    async def _unpin_chat_message(self, params: _Params) -> bool:
        chat = self._writable_chat(params)
        mid = params.integer("message_id")
        if mid is None and chat.pinned:
            mid = chat.pinned[-1]
        if mid not in chat.pinned:
            raise _bad("message to unpin not found")
        chat.pinned = [m for m in chat.pinned if m != mid]
        return True


def _client_gone(request: web.Request) -> bool:
    """True when the client of a pending request has closed its connection (or died)."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return True
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    try:  # the event loop may not have noticed the close yet: look at the socket itself
        with sock.dup() as probe:
            return probe.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _error_response(error: ApiError) -> web.Response:
    return web.json_response(error.payload(), status=error.error_code)


def _short(params: dict[str, Any]) -> str:
    shown = {
        k: (f"<upload {v.filename}>" if isinstance(v, Upload) else v) for k, v in params.items()
    }
    text = json.dumps(shown, ensure_ascii=False, default=str)
    return text if len(text) <= 300 else text[:297] + "..."
