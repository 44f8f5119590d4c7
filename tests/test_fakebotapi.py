"""Tests of the fake Bot API server, driven by the real python-telegram-bot stack."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyParameters,
    Update,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ExtBot,
    MessageHandler,
    filters,
)

from tests.fakebotapi import FakeBotAPI, parse_html, parse_markdown, parse_markdown_v2

TOKEN = "424242:AAKefuFakeBotApiTestToken_abcdefghij"


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(token=TOKEN) as server:
        yield server


@pytest.fixture
async def bot(api: FakeBotAPI) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=f"{api.url}/bot", base_file_url=f"{api.url}/file/bot") as b:
        yield b


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(d.title(), callback_data=d) for d in data]])


# ------------------------------------------------------------------------------ parsers


def test_html_parser_entities_and_utf16_offsets() -> None:
    text, entities = parse_html(
        '😀 <b>bold <i>both</i></b> &lt;&amp;&gt; <a href="example.com">link</a> '
        '<pre><code class="language-python">x = 1</code></pre>'
    )
    assert text == "😀 bold both <&> link x = 1"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 9},
        {"type": "italic", "offset": 8, "length": 4},
        {"type": "text_link", "offset": 17, "length": 4, "url": "http://example.com/"},
        {"type": "pre", "offset": 22, "length": 5, "language": "python"},
    ]


def test_markdown_parsers() -> None:
    assert parse_markdown_v2(r"*Price:* 1\.5 \- [site](https://kefu.dev)") == (
        "Price: 1.5 - site",
        [
            {"type": "bold", "offset": 0, "length": 6},
            {"type": "text_link", "offset": 13, "length": 4, "url": "https://kefu.dev/"},
        ],
    )
    assert parse_markdown("*bold* _it_ `code`")[1] == [
        {"type": "bold", "offset": 0, "length": 4},
        {"type": "italic", "offset": 5, "length": 2},
        {"type": "code", "offset": 8, "length": 4},
    ]


# ------------------------------------------------------------------------------ raw HTTP


async def test_raw_http_shapes_json_body_query_string_and_case(api: FakeBotAPI) -> None:
    user = api.add_user("Ann")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{api.url}/bot{TOKEN}/GETME") as resp:
            assert resp.status == 200
            assert (await resp.json())["result"]["username"] == api.bot_user["username"]
        async with http.post(f"{api.url}/bot999:nope/getMe") as resp:
            assert resp.status == 401
            assert await resp.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
        async with http.post(f"{api.url}/bot{TOKEN}/sendTelepathy") as resp:
            assert resp.status == 404
            assert (await resp.json())["description"] == "Not Found"
        markup = {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}
        payload = {"chat_id": user["id"], "text": "json body", "reply_markup": markup}
        async with http.post(f"{api.url}/bot{TOKEN}/sendMessage", json=payload) as resp:
            result = (await resp.json())["result"]
            assert result["reply_markup"] == markup
            assert result["from"] == api.bot_user
        query = {"chat_id": str(user["id"]), "text": "query string"}
        async with http.get(f"{api.url}/bot{TOKEN}/sendmessage", params=query) as resp:
            assert (await resp.json())["result"]["message_id"] == 2
        async with http.post(f"{api.url}/bot{TOKEN}/sendMessage", data={"text": "x"}) as resp:
            assert resp.status == 400
            assert (await resp.json())["description"] == "Bad Request: chat_id is empty"
    assert [m["text"] for m in api.messages_in(user["id"])] == ["json body", "query string"]


# ------------------------------------------------------------------------------ Bot API via PTB


async def test_get_me_and_wrong_token(api: FakeBotAPI, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == 424242
    assert me.is_bot
    assert me.username == api.bot_user["username"]
    wrong = Bot("1:wrong", base_url=f"{api.url}/bot")
    with pytest.raises(InvalidToken):
        await wrong.initialize()


async def test_send_message_html(api: FakeBotAPI, bot: Bot) -> None:
    user = api.add_user("Li", username="li")
    msg = await bot.send_message(
        user["id"],
        "<b>Ticket #7</b> is <i>open</i> &amp; assigned to <code>ops</code>",
        parse_mode="HTML",
        reply_markup=keyboard("close"),
    )
    assert msg.text == "Ticket #7 is open & assigned to ops"
    assert [(e.type, e.offset, e.length) for e in msg.entities] == [
        ("bold", 0, 9),
        ("italic", 13, 4),
        ("code", 32, 3),
    ]
    assert msg.from_user is not None and msg.from_user.id == api.bot_user["id"]
    assert msg.chat.id == user["id"]
    stored = api.sent[-1]
    assert stored["message_id"] == msg.message_id
    assert stored["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "close"
    method, params = api.requests[-1]
    assert method == "sendMessage"
    assert params["parse_mode"] == "HTML"
    assert params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Close", "callback_data": "close"}]]
    }


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("<b>unclosed", "can't find end tag corresponding to start tag"),
        ("<blink>x</blink>", 'unsupported start tag "blink"'),
        ("1 < 2", 'unsupported start tag "" at byte offset 2'),
        ("<b>x</i>", "unmatched end tag"),
        ("</b>", "unexpected end tag"),
        ("Tom &nbsp; Jerry", "unsupported html entity"),
        ('<span class="x">y</span>', 'tag "span" must have class "tg-spoiler"'),
    ],
)
async def test_broken_html_is_rejected(api: FakeBotAPI, bot: Bot, text: str, fragment: str) -> None:
    user = api.add_user("Bo")
    with pytest.raises(BadRequest) as exc_info:
        await bot.send_message(user["id"], text, parse_mode="HTML")
    assert exc_info.value.message.lower().startswith("can't parse entities: ")
    assert fragment in exc_info.value.message.lower()
    assert api.sent == []


async def test_markdown_v2_escaping(api: FakeBotAPI, bot: Bot) -> None:
    user = api.add_user("Md")
    with pytest.raises(BadRequest, match=r"character '\.' is reserved"):
        await bot.send_message(user["id"], "Version 2.0", parse_mode="MarkdownV2")
    with pytest.raises(BadRequest, match="find end of bold entity at byte offset 0"):
        await bot.send_message(user["id"], "*open", parse_mode="MarkdownV2")
    msg = await bot.send_message(user["id"], r"*Version* 2\.0", parse_mode="MarkdownV2")
    assert msg.text == "Version 2.0"
    assert msg.entities[0].type == "bold"


async def test_text_validation(api: FakeBotAPI, bot: Bot) -> None:
    user = api.add_user("Val")
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(user["id"], "x" * 4097)
    assert (await bot.send_message(user["id"], "x" * 4096)).text == "x" * 4096
    # the limit applies after entity parsing
    await bot.send_message(user["id"], f"<b>{'y' * 4096}</b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(user["id"], "  \n ")
    with pytest.raises(BadRequest, match="Message caption is too long"):
        await bot.send_photo(user["id"], photo=b"jpeg", caption="c" * 1025)
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(-100123, "hello")
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(user["id"], "pick", reply_markup=keyboard("z" * 65))
    with pytest.raises(BadRequest, match="Message to be replied not found"):
        await bot.send_message(user["id"], "re", reply_parameters=ReplyParameters(999))
    ok = await bot.send_message(
        user["id"], "re", reply_parameters=ReplyParameters(999, allow_sending_without_reply=True)
    )
    assert ok.reply_to_message is None
    api.user_blocks_bot(user)
    with pytest.raises(Forbidden, match="blocked by the user"):
        await bot.send_message(user["id"], "still there?")
    assert len(api.messages_in(user["id"])) == 3


async def test_reply_edit_and_delete(api: FakeBotAPI, bot: Bot) -> None:
    user = api.add_user("Ed")
    question = api.user_sends_text(user, "where is my order?")
    msg = await bot.send_message(
        user["id"],
        "Let me check",
        reply_to_message_id=question["message_id"],
        reply_markup=keyboard("a", "b"),
    )
    assert msg.reply_to_message is not None
    assert msg.reply_to_message.text == "where is my order?"
    edited = await bot.edit_message_text("Checked!", chat_id=user["id"], message_id=msg.message_id)
    assert isinstance(edited, type(msg)) and edited.edit_date is not None
    live = api.message(user["id"], msg.message_id)
    assert live["text"] == "Checked!"
    assert "reply_markup" not in live  # editing without reply_markup removes the keyboard
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("Checked!", chat_id=user["id"], message_id=msg.message_id)
    await bot.edit_message_reply_markup(user["id"], msg.message_id, reply_markup=keyboard("c"))
    assert (
        api.message(user["id"], msg.message_id)["reply_markup"]["inline_keyboard"][0][0]["text"]
        == "C"
    )
    assert await bot.delete_message(user["id"], msg.message_id)
    assert api.messages_in(user["id"]) == []
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(user["id"], msg.message_id)


async def test_copy_message_of_a_photo_and_download(api: FakeBotAPI, bot: Bot) -> None:
    user = api.add_user("Pat")
    agents = api.add_supergroup("Agents", members=[user])
    photo_msg = api.user_sends_photo(user, caption="broken screen")
    assert len(photo_msg["photo"]) == 3

    copied = await bot.copy_message(
        chat_id=agents["id"],
        from_chat_id=user["id"],
        message_id=photo_msg["message_id"],
        caption="<b>From Pat:</b> broken screen",
        parse_mode="HTML",
    )
    copy = api.message(agents["id"], copied.message_id)
    assert copy["photo"] == photo_msg["photo"]
    assert copy["caption"] == "From Pat: broken screen"
    assert copy["caption_entities"] == [{"type": "bold", "offset": 0, "length": 9}]
    assert copy["from"] == api.bot_user
    assert api.sent[-1] is copy

    biggest = photo_msg["photo"][-1]
    file = await bot.get_file(biggest["file_id"])
    data = bytes(await file.download_as_bytearray())
    assert data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")

    sent = await bot.send_document(user["id"], document=b"invoice", filename="invoice.pdf")
    assert sent.document is not None
    assert sent.document.file_name == "invoice.pdf"
    assert sent.document.mime_type == "application/pdf"
    file = await bot.get_file(sent.document.file_id)
    assert bytes(await file.download_as_bytearray()) == b"invoice"
    with pytest.raises(BadRequest, match="Message to copy not found"):
        await bot.copy_message(agents["id"], user["id"], 999)


async def test_forum_topics(api: FakeBotAPI, bot: Bot) -> None:
    agent = api.add_user("Agent")
    forum = api.add_supergroup("Support desk", is_forum=True, admins=[agent])
    plain = api.add_supergroup("Plain group")

    topic = await bot.create_forum_topic(forum["id"], "Ticket #42 · Alice")
    assert api.topics(forum["id"]) == [
        {
            "message_thread_id": topic.message_thread_id,
            "name": "Ticket #42 · Alice",
            "icon_color": 7322096,
        }
    ]
    service = api.message(forum["id"], topic.message_thread_id)
    assert service["forum_topic_created"]["name"] == "Ticket #42 · Alice"

    msg = await bot.send_message(
        forum["id"], "New ticket", message_thread_id=topic.message_thread_id
    )
    assert msg.message_thread_id == topic.message_thread_id
    assert msg.is_topic_message
    assert [m["text"] for m in api.messages_in(forum["id"], thread_id=topic.message_thread_id)] == [
        "New ticket"
    ]
    answer = api.user_sends_text(
        agent, "on it", chat_id=forum["id"], message_thread_id=topic.message_thread_id
    )
    assert answer["message_thread_id"] == topic.message_thread_id

    with pytest.raises(BadRequest, match="Message thread not found"):
        await bot.send_message(forum["id"], "lost", message_thread_id=topic.message_thread_id + 100)
    with pytest.raises(BadRequest, match="The chat is not a forum"):
        await bot.create_forum_topic(plain["id"], "nope")
    # in a plain supergroup the thread id is ignored
    ignored = await bot.send_message(plain["id"], "hi", message_thread_id=12345)
    assert ignored.message_thread_id is None

    assert await bot.close_forum_topic(forum["id"], topic.message_thread_id)
    assert await bot.edit_forum_topic(
        forum["id"], topic.message_thread_id, name="Ticket #42 (closed)"
    )
    assert api.topics(forum["id"])[0]["name"] == "Ticket #42 (closed)"
    member = await bot.get_chat_member(forum["id"], agent["id"])
    assert member.status == "administrator"
    api.set_member_status(forum["id"], agent["id"], "left")
    assert (await bot.get_chat_member(forum["id"], agent["id"])).status == "left"
    chat = await bot.get_chat(forum["id"])
    assert chat.is_forum and chat.title == "Support desk"


async def test_get_updates_offset_and_long_poll(api: FakeBotAPI, bot: Bot) -> None:
    user = api.add_user("Poll")
    first = api.user_sends_text(user, "one")
    [update] = await bot.get_updates(timeout=0)
    assert update.message is not None and update.message.text == "one"
    assert update.message.message_id == first["message_id"]
    assert api.pending_updates == 1
    assert await bot.get_updates(offset=update.update_id + 1, timeout=0) == ()
    assert api.pending_updates == 0

    waiting = asyncio.create_task(bot.get_updates(offset=update.update_id + 1, timeout=5))
    await api.wait_for(lambda: [m for m, _ in api.requests].count("getUpdates") == 3)
    api.user_sends_text(user, "/start@kefu_test_bot hello")
    [later] = await waiting
    assert later.message is not None
    assert later.message.text == "/start@kefu_test_bot hello"
    [entity] = later.message.entities
    assert (entity.type, entity.offset, entity.length) == ("bot_command", 0, 20)


async def test_concurrent_get_updates_conflict(api: FakeBotAPI, bot: Bot) -> None:
    pending = asyncio.create_task(bot.get_updates(timeout=5))
    await api.wait_for(lambda: any(m == "getUpdates" for m, _ in api.requests))
    url = f"{api.url}/bot{TOKEN}/getUpdates"
    async with aiohttp.ClientSession() as http, http.post(url, data={"timeout": "0"}) as resp:
        assert (await resp.json()) == {"ok": True, "result": []}
    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await pending


async def test_every_simulated_message_parses_in_ptb(api: FakeBotAPI, bot: Bot) -> None:
    user = api.add_user("Sim", last_name="User")
    forum = api.add_supergroup("Forum", is_forum=True, members=[user])
    topic = api.add_forum_topic(forum["id"], "Existing topic", creator=user)
    api.user_sends_document(user, "log.txt", b"boom", "text/plain", caption="logs")
    api.user_sends_voice(user, duration=7)
    api.user_sends_video(user, caption="clip")
    api.user_sends_sticker(user, emoji="🙂")
    api.user_sends_contact(user, "+15550100")
    api.user_sends_text(
        user, "in topic", chat_id=forum["id"], message_thread_id=topic["message_thread_id"]
    )
    updates = await bot.get_updates(timeout=0)
    messages = [u.message for u in updates if u.message is not None]
    assert len(messages) == 6
    document, voice, video, sticker, contact, threaded = messages
    assert document.document is not None and document.document.file_name == "log.txt"
    assert document.caption == "logs"
    assert voice.voice is not None and voice.voice.mime_type == "audio/ogg"
    assert video.video is not None and video.caption == "clip"
    assert sticker.sticker is not None and sticker.sticker.emoji == "🙂"
    assert contact.contact is not None
    assert (contact.contact.first_name, contact.contact.last_name) == ("Sim", "User")
    assert contact.contact.user_id == user["id"]
    assert threaded.message_thread_id == topic["message_thread_id"] and threaded.is_topic_message
    # Telegram quirk: topic messages "reply" to the forum_topic_created service message
    assert threaded.reply_to_message is not None
    assert threaded.reply_to_message.forum_topic_created is not None
    file = await bot.get_file(document.document.file_id)
    assert bytes(await file.download_as_bytearray()) == b"boom"


async def test_polling_application_end_to_end(api: FakeBotAPI) -> None:
    seen: list[str] = []

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(
            "How can we help?", reply_markup=keyboard("billing", "bug")
        )

    async def text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None and update.effective_message.text
        seen.append(update.effective_message.text)
        await update.effective_message.reply_html(
            f"You said: <i>{update.effective_message.text}</i>"
        )

    async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer(f"Routing to {query.data}")
        await query.edit_message_text(f"Topic: {query.data}")

    app = (
        Application.builder()
        .token(TOKEN)
        .base_url(f"{api.url}/bot")
        .base_file_url(f"{api.url}/file/bot")
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, text))
    app.add_handler(CallbackQueryHandler(button))
    alice = api.add_user("Alice", username="alice")

    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            api.user_sends_text(alice, "/start")
            [menu] = await api.wait_for_messages(alice["id"], 1)
            assert menu["text"] == "How can we help?"

            query_id = api.user_taps_button(alice, menu, "bug")
            await api.wait_for(lambda: query_id in api.callback_answers)
            assert api.callback_answers[query_id]["text"] == "Routing to bug"
            await api.wait_for(
                lambda: api.message(alice["id"], menu["message_id"])["text"] == "Topic: bug"
            )
            assert "reply_markup" not in api.message(alice["id"], menu["message_id"])
            with pytest.raises(AssertionError, match="no inline button"):
                api.user_taps_button(alice, menu, "billing")

            api.user_sends_text(alice, "my app crashes")
            replies = await api.wait_for_messages(alice["id"], 2)
            assert replies[-1]["text"] == "You said: my app crashes"
            assert replies[-1]["entities"] == [{"type": "italic", "offset": 10, "length": 14}]
            await api.wait_idle()
            assert seen == ["my app crashes"]
            assert api.pending_updates == 0
        finally:
            await app.updater.stop()
            await app.stop()
    methods = [method for method, _ in api.requests]
    assert methods[:2] == ["getMe", "deleteWebhook"]
    assert {"answerCallbackQuery", "editMessageText", "sendMessage"} <= set(methods)


# PTB's own RetryAfter.__init__ emits a deprecation warning about the retry_after type.
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_flood_limit_and_ptb_rate_limiter(api: FakeBotAPI, bot: Bot) -> None:
    user = api.add_user("Flood")
    api.flood_limit(per_chat_per_second=1, overall_per_second=None)
    await bot.send_message(user["id"], "first")
    with pytest.raises(RetryAfter, match="Retry in 1 second"):
        await bot.send_message(user["id"], "too fast")
    assert api.flood_errors == 1

    limited = ExtBot(
        TOKEN,
        base_url=f"{api.url}/bot",
        base_file_url=f"{api.url}/file/bot",
        rate_limiter=AIORateLimiter(max_retries=3),
    )
    async with limited:
        sent = await asyncio.gather(*(limited.send_message(user["id"], f"n{i}") for i in range(2)))
    assert sorted(str(m.text) for m in sent) == ["n0", "n1"]
    assert api.flood_errors >= 2
    texts = [m["text"] for m in api.messages_in(user["id"])]
    assert texts[0] == "first"
    assert sorted(texts[1:]) == ["n0", "n1"]

    api.flood_limit(None, None)
    await asyncio.gather(*(bot.send_message(user["id"], str(i)) for i in range(5)))
    assert len(api.messages_in(user["id"])) == 8


async def test_fail_next_and_wait_for_diagnostics(api: FakeBotAPI, bot: Bot) -> None:
    user = api.add_user("Err")
    api.fail_next("sendMessage", "Bad Request: something odd", error_code=400)
    with pytest.raises(BadRequest, match="Something odd"):
        await bot.send_message(user["id"], "x")
    await bot.send_message(user["id"], "y")
    with pytest.raises(AssertionError, match="sendMessage"):
        await api.wait_for(lambda: False, timeout=0.05)


async def test_other_methods(api: FakeBotAPI, bot: Bot) -> None:
    user = api.add_user("Misc")
    group = api.add_supergroup("G", members=[user])
    await bot.set_my_commands([("start", "Start"), ("help", "Help")])
    assert [c.command for c in await bot.get_my_commands()] == ["start", "help"]
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()
    assert await bot.send_chat_action(user["id"], "typing")
    msg = api.user_sends_text(user, "thanks", chat_id=group["id"])
    assert await bot.set_message_reaction(group["id"], msg["message_id"], "👍")
    assert api.reactions[(group["id"], msg["message_id"])] == [{"type": "emoji", "emoji": "👍"}]
    assert await bot.pin_chat_message(group["id"], msg["message_id"])
    assert (
        api.messages_in(group["id"], include_service=True)[-1]["pinned_message"]["text"] == "thanks"
    )
    fwd = await bot.forward_message(user["id"], group["id"], msg["message_id"])
    assert fwd.forward_origin is not None and fwd.text == "thanks"
    voice = api.user_sends_voice(user)
    sent_voice = await bot.send_voice(group["id"], voice["voice"]["file_id"])
    assert sent_voice.voice is not None and sent_voice.voice.file_id == voice["voice"]["file_id"]
    with pytest.raises(BadRequest, match="Can't use file of type voice as photo"):
        await bot.send_photo(group["id"], voice["voice"]["file_id"])
    info = await bot.get_webhook_info()
    assert info.url == ""
    assert await bot.set_webhook("https://example.com/hook")
    with pytest.raises(Exception, match="webhook is active"):
        await bot.get_updates(timeout=0)
    assert await bot.delete_webhook()


async def test_wait_idle_waits_for_pending_updates(api: FakeBotAPI, bot: Bot) -> None:
    user = api.add_user("Idle")
    api.user_sends_text(user, "pending")
    with pytest.raises(AssertionError):
        await api.wait_idle(quiet=0.05, timeout=0.2)
    updates: tuple[Any, ...] = await bot.get_updates(timeout=0)
    await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    await api.wait_idle(quiet=0.05)


# ------------------------------------------------------------------------------ durability aids


async def _raw(api: FakeBotAPI, method: str, payload: dict[str, Any]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{api.url}/bot{TOKEN}/{method}", json=payload) as resp,
    ):
        return resp.status, await resp.json()


async def test_latency_delays_every_method_but_get_updates(api: FakeBotAPI, bot: Bot) -> None:
    user = api.add_user("Slow")
    api.set_latency(1.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    sending = asyncio.create_task(bot.send_message(user["id"], "late"))
    assert await bot.get_updates(timeout=0) == ()  # not delayed
    assert not sending.done()
    assert api.sent == []  # not carried out before the latency has passed
    sent = await sending
    assert loop.time() - started >= 1.5
    assert sent.text == "late"
    api.set_latency(0)
    with pytest.raises(ValueError, match=">= 0"):
        api.set_latency(-1)


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_injected_faults_fail_before_execution(api: FakeBotAPI, bot: Bot) -> None:
    user = api.add_user("Faulty")
    api.inject_faults(1.0, kinds=("429",))
    status, body = await _raw(api, "sendMessage", {"chat_id": user["id"], "text": "a"})
    assert (status, body) == (
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 1",
            "parameters": {"retry_after": 1},
        },
    )
    with pytest.raises(RetryAfter):
        await bot.send_message(user["id"], "b")

    api.inject_faults(1.0, kinds=("500",))
    status, body = await _raw(api, "sendMessage", {"chat_id": user["id"], "text": "c"})
    assert (status, body) == (
        500,
        {"ok": False, "error_code": 500, "description": "Internal Server Error"},
    )
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_message(user["id"], "d")

    api.inject_faults(1.0, kinds=("drop",), methods=("copyMessage",))
    source = await bot.send_message(user["id"], "source")  # sendMessage is not faulted now
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await _raw(
            api,
            "copyMessage",
            {"chat_id": user["id"], "from_chat_id": user["id"]} | {"message_id": source.message_id},
        )
    with pytest.raises(NetworkError):
        await bot.copy_message(user["id"], user["id"], source.message_id)
    assert await bot.get_me()  # other methods keep working

    assert api.fault_counts == {"429": 2, "500": 2, "drop": 2}  # so far
    assert [(method, kind) for method, kind, _ in api.faults] == [
        ("sendMessage", "429"),
        ("sendMessage", "429"),
        ("sendMessage", "500"),
        ("sendMessage", "500"),
        ("copyMessage", "drop"),
        ("copyMessage", "drop"),
    ]
    assert [m.get("text") for m in api.sent] == ["source"]  # nothing faulted was carried out

    api.clear_faults()
    assert (await bot.copy_message(user["id"], user["id"], source.message_id)).message_id > 0
    # only into some chats
    group = api.add_supergroup("Desk")
    api.inject_faults(1.0, kinds=("500",), chats=[group["id"]])
    assert (await bot.send_message(user["id"], "private is fine")).text == "private is fine"
    with pytest.raises(NetworkError):
        await bot.send_message(group["id"], "the group fails")
    api.clear_faults()
    with pytest.raises(ValueError, match="fault kinds"):
        api.inject_faults(0.5, kinds=("404",))


async def test_injected_fault_rate_is_reproducible(api: FakeBotAPI) -> None:
    user = api.add_user("Dice")

    async def outcomes(seed: int) -> list[int]:
        api.inject_faults(0.3, kinds=("429", "500"), seed=seed)
        statuses = []
        for i in range(40):
            status, _ = await _raw(api, "sendMessage", {"chat_id": user["id"], "text": str(i)})
            statuses.append(status)
        return statuses

    first = await outcomes(7)
    assert await outcomes(7) == first
    failed = sum(1 for status in first if status != 200)
    assert 3 <= failed <= 25
    assert sum(api.fault_counts.values()) == 2 * failed
    assert len(api.sent) == 2 * (40 - failed)
    # the kinds are taken in turn
    kinds = [kind for _, kind, _ in api.faults[:failed]]
    assert kinds == [("429", "500")[i % 2] for i in range(failed)]
    assert [status for status in first if status != 200] == [
        (429, 500)[i % 2] for i in range(failed)
    ]


async def test_freeze_holds_sends_and_thaw_discards_gone_clients(api: FakeBotAPI, bot: Bot) -> None:
    user = api.add_user("Frozen")
    api.freeze_sends()
    sending = asyncio.create_task(bot.send_message(user["id"], "held"))
    await api.wait_for(lambda: api.held_requests == 1)
    api.user_sends_text(user, "still polled")
    [update] = await bot.get_updates(timeout=0)  # getUpdates keeps working while frozen
    assert update.message is not None and update.message.text == "still polled"
    assert api.sent == [] and not sending.done()
    api.thaw_sends()
    assert (await sending).text == "held"

    # a client that goes away while its request is held: never carried out
    api.freeze_sends()
    payload = json.dumps({"chat_id": user["id"], "text": "from a dead process"})
    script = (
        "import urllib.request\n"
        f"req = urllib.request.Request({api.url + '/bot' + TOKEN + '/sendMessage'!r}, "
        f"data={payload.encode()!r}, headers={{'Content-Type': 'application/json'}})\n"
        "urllib.request.urlopen(req, timeout=30)\n"
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    try:
        await api.wait_for(lambda: api.held_requests == 1)
    finally:
        process.kill()
        await process.wait()
    # and one whose client is still there
    alive = asyncio.create_task(bot.send_message(user["id"], "alive"))
    await api.wait_for(lambda: api.held_requests == 2)
    api.thaw_sends()
    assert (await alive).text == "alive"
    await api.wait_for(lambda: api.held_requests == 0)
    assert [m["text"] for m in api.sent] == ["held", "alive"]
    assert [(method, params["text"]) for method, params in api.discarded] == [
        ("sendMessage", "from a dead process")
    ]


async def test_topic_deleted_by_an_admin(api: FakeBotAPI, bot: Bot) -> None:
    admin = api.add_user("Admin")
    customer = api.add_user("Cu")
    forum = api.add_supergroup("Desk", is_forum=True, admins=[admin])
    topic = await bot.create_forum_topic(forum["id"], "#1 · Cu")
    thread = topic.message_thread_id
    card = await bot.send_message(forum["id"], "card", message_thread_id=thread)
    source = api.user_sends_text(customer, "hello")
    api.admin_deletes_topic(forum["id"], thread)

    assert api.topics(forum["id"]) == []
    assert api.deleted_topics == [(forum["id"], thread)]
    assert api.messages_in(forum["id"]) == []
    assert [m.get("text") for m in api.sent_to(forum["id"], thread_id=thread)] == [None, "card"]
    status, body = await _raw(
        api, "sendMessage", {"chat_id": forum["id"], "text": "x", "message_thread_id": thread}
    )
    assert (status, body) == (
        400,
        {"ok": False, "error_code": 400, "description": "Bad Request: message thread not found"},
    )
    with pytest.raises(BadRequest, match="Message thread not found"):
        await bot.copy_message(
            forum["id"], customer["id"], source["message_id"], message_thread_id=thread
        )
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("new", chat_id=forum["id"], message_id=card.message_id)
    fresh = await bot.create_forum_topic(forum["id"], "#1 · Cu")
    assert fresh.message_thread_id != thread
    moved = await bot.send_message(forum["id"], "again", message_thread_id=fresh.message_thread_id)
    assert moved.message_thread_id == fresh.message_thread_id
    with pytest.raises(ValueError, match="no topic"):
        api.admin_deletes_topic(forum["id"], thread)


async def test_topic_closed_by_an_admin(api: FakeBotAPI, bot: Bot) -> None:
    admin = api.add_user("Admin")
    forum = api.add_supergroup("Desk", is_forum=True, admins=[admin])
    topic = await bot.create_forum_topic(forum["id"], "#2 · Bo")
    thread = topic.message_thread_id
    await bot.send_message(forum["id"], "card", message_thread_id=thread)
    closed = api.admin_closes_topic(forum["id"], thread, by=admin)

    [update] = await bot.get_updates(timeout=0)
    assert update.message is not None
    assert update.message.forum_topic_closed is not None
    assert update.message.message_thread_id == thread
    assert update.message.from_user is not None and update.message.from_user.id == admin["id"]
    assert api.message(forum["id"], closed["message_id"])["forum_topic_closed"] == {}
    status, body = await _raw(
        api, "sendMessage", {"chat_id": forum["id"], "text": "x", "message_thread_id": thread}
    )
    assert (status, body["description"]) == (400, "Bad Request: TOPIC_CLOSED")
    with pytest.raises(BadRequest, match=r"(?i)topic_closed"):
        await bot.send_message(forum["id"], "x", message_thread_id=thread)
    other = await bot.create_forum_topic(forum["id"], "#2 · Bo (2)")  # still works
    await bot.send_message(forum["id"], "elsewhere", message_thread_id=other.message_thread_id)
    assert await bot.reopen_forum_topic(forum["id"], thread)
    assert (await bot.send_message(forum["id"], "y", message_thread_id=thread)).text == "y"


async def test_basic_group_migrates_to_a_supergroup(api: FakeBotAPI, bot: Bot) -> None:
    owner = api.add_user("Owner")
    agent = api.add_user("Agent")
    group = api.add_group("Support", members=[agent], owner=owner)
    old_id = group["id"]
    assert old_id < 0 and not str(old_id).startswith("-100")
    chat = await bot.get_chat(old_id)
    assert chat.type == "group"
    await bot.send_message(old_id, "before")
    with pytest.raises(BadRequest, match="The chat is not a forum"):
        await bot.create_forum_topic(old_id, "nope")

    new_id = api.migrate_chat(old_id)
    assert str(new_id).startswith("-100")
    updates = await bot.get_updates(timeout=0)
    messages = [u.message for u in updates if u.message is not None]
    assert [(m.chat.id, m.migrate_to_chat_id, m.migrate_from_chat_id) for m in messages] == [
        (old_id, new_id, None),
        (new_id, None, old_id),
    ]
    assert all(m.from_user is not None and m.from_user.id == owner["id"] for m in messages)

    status, body = await _raw(api, "sendMessage", {"chat_id": old_id, "text": "after"})
    assert (status, body) == (
        400,
        {
            "ok": False,
            "error_code": 400,
            "description": "Bad Request: group chat was upgraded to a supergroup chat",
            "parameters": {"migrate_to_chat_id": new_id},
        },
    )
    with pytest.raises(ChatMigrated) as migrated:
        await bot.send_message(old_id, "after")
    assert migrated.value.new_chat_id == new_id
    with pytest.raises(ChatMigrated):
        await bot.get_chat(old_id)
    assert (await bot.get_chat(new_id)).type == "supergroup"
    assert (await bot.send_message(new_id, "after")).chat.id == new_id
    assert (await bot.get_chat_member(new_id, agent["id"])).status == "member"
    assert (await bot.get_chat_member(new_id, owner["id"])).status == "creator"
    assert [m["text"] for m in api.messages_in(old_id)] == ["before"]
    api.user_sends_text(agent, "hi there", chat_id=new_id)
    with pytest.raises(ValueError, match="upgraded"):
        api.user_sends_text(agent, "lost", chat_id=old_id)
    with pytest.raises(ValueError, match="not a basic group"):
        api.migrate_chat(new_id)


async def test_redeliver_repeats_a_confirmed_update(api: FakeBotAPI, bot: Bot) -> None:
    user = api.add_user("Twice")
    first = api.user_sends_text(user, "once")
    second = api.user_sends_text(user, "twice?")
    updates = await bot.get_updates(timeout=0)
    assert [u.update_id for u in updates] == [api.update_id_of(first), api.update_id_of(second)]
    offset = updates[-1].update_id + 1
    assert await bot.get_updates(offset=offset, timeout=0) == ()
    with pytest.raises(ValueError, match="unknown update"):
        api.redeliver(1)

    api.redeliver(api.update_id_of(first))
    [again] = await bot.get_updates(offset=offset, timeout=0)
    assert again.to_dict() == updates[0].to_dict()
    assert await bot.get_updates(offset=offset, timeout=0) == ()  # delivered once more only
    assert api.pending_updates == 0

    third = api.user_sends_text(user, "pending")
    with pytest.raises(ValueError, match="still pending"):
        api.redeliver(api.update_id_of(third))


async def test_timings_and_copy_sources(api: FakeBotAPI, bot: Bot) -> None:
    user = api.add_user("Clock")
    group = api.add_supergroup("Desk")
    written = api.user_sends_text(user, "when?")
    update_id = api.update_id_of(written)
    copied = await bot.copy_message(group["id"], user["id"], written["message_id"])
    reply = await bot.send_message(user["id"], "now")
    assert api.copied_from == {
        (group["id"], copied.message_id): (user["id"], written["message_id"])
    }
    queued = api.enqueued_at[update_id]
    assert queued <= api.sent_at[(group["id"], copied.message_id)]
    assert (
        api.sent_at[(group["id"], copied.message_id)] <= api.sent_at[(user["id"], reply.message_id)]
    )
    assert [m["message_id"] for m in api.sent_to(user["id"])] == [reply.message_id]


async def test_service_messages_of_private_chats(api: FakeBotAPI, bot: Bot) -> None:
    user = api.add_user("Service")
    bot_message = await bot.send_message(user["id"], "pin me")
    api.user_pins_message(user, api.message(user["id"], bot_message.message_id))
    api.user_sets_auto_delete_timer(user, 86400)
    api.user_sends_dice(user, emoji="🎯", value=6)
    updates = await bot.get_updates(timeout=0)
    pinned, timer, dice = (u.message for u in updates)
    assert pinned is not None and pinned.pinned_message is not None
    assert pinned.pinned_message.message_id == bot_message.message_id
    assert timer is not None and timer.message_auto_delete_timer_changed is not None
    assert timer.message_auto_delete_timer_changed.message_auto_delete_time == 86400
    assert dice is not None and dice.dice is not None
    assert (dice.dice.emoji, dice.dice.value) == ("🎯", 6)
    assert (await bot.get_chat(user["id"])).pinned_message is not None
