"""The baseline for bench/bench_pipeline.py: a bare python-telegram-bot echo bot.

One ``MessageHandler`` replies to every private text message with the same text; updates are
processed concurrently (PTB's ``concurrent_updates``), there is no rate limiter, no database and
no logging beyond warnings. It reads the same variables as Kefu, so the benchmark starts both the
same way:

    KEFU_TELEGRAM_TOKEN=123:abc KEFU_TELEGRAM_API_URL=http://127.0.0.1:8081 python bench/echo_bot.py

Requests go to ``{KEFU_TELEGRAM_API_URL}/bot{token}/{method}``. Stop it with SIGINT or SIGTERM.
"""

from __future__ import annotations

import logging
import os
import sys

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is not None and message.text is not None:
        await message.reply_text(message.text)


def build(token: str, api_url: str) -> Application:
    root = api_url.rstrip("/")
    application = (
        Application.builder()
        .token(token)
        .base_url(f"{root}/bot")
        .base_file_url(f"{root}/file/bot")
        .concurrent_updates(True)
        .build()
    )
    text_in_private = filters.TEXT & ~filters.COMMAND & filters.ChatType.PRIVATE
    application.add_handler(MessageHandler(text_in_private, echo))
    return application


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # request URLs contain the token
    token = os.environ.get("KEFU_TELEGRAM_TOKEN", "").strip()
    if not token:
        print("echo_bot: set KEFU_TELEGRAM_TOKEN (and KEFU_TELEGRAM_API_URL)", file=sys.stderr)
        return 2
    api_url = os.environ.get("KEFU_TELEGRAM_API_URL", "https://api.telegram.org")
    build(token, api_url).run_polling(allowed_updates=["message"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
