"""Webhook mode: the webhook is registered with its secret, requests without the secret are
refused, and an update is committed to the inbox before Telegram hears 200."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
from sqlalchemy import select

from bot import runtime
from bot.app import build_services
from crm.models import InboxUpdate
from tests.e2e.conftest import make_settings, settle, wait_text
from tests.fakebotapi import FakeBotAPI

SECRET = "s3cret-token-for-the-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_webhook_stores_before_answering(
    api: FakeBotAPI, database_url: str, tmp_path: Path
) -> None:
    customer = api.add_user("Bob")
    staff = api.add_supergroup("Support", is_forum=False, members=[])
    port = free_port()
    settings = make_settings(
        api,
        database_url,
        tmp_path / "data",
        staff_chat_id=staff["id"],
        webhook_url=f"https://support.example.com:{port}/telegram",
        webhook_listen="127.0.0.1",
        webhook_port=port,
        webhook_secret=SECRET,
    )
    services = build_services(settings)
    kefu = await runtime.start(settings, services, webhook=True)
    try:
        assert api.webhook is not None
        assert api.webhook["url"] == f"https://support.example.com:{port}/telegram"
        assert api.webhook["secret_token"] == SECRET
        api.user_sends_text(customer, "My parcel never arrived")
        update = api._updates.pop()  # Telegram would POST it to the webhook
        url = f"http://127.0.0.1:{port}/telegram"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=update) as refused:
                assert refused.status == 403  # no secret token
            wrong = {"X-Telegram-Bot-Api-Secret-Token": "guess"}
            async with http.post(url, json=update, headers=wrong) as refused:
                assert refused.status == 403
            async with services.session() as session:
                assert (await session.execute(select(InboxUpdate))).first() is None
            right = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            async with http.post(url, json=update, headers=right) as accepted:
                assert accepted.status == 200
                # Committed before the 200 reached Telegram.
                async with services.session() as session:
                    stored = (await session.execute(select(InboxUpdate))).scalars().all()
                assert [row.update_id for row in stored] == [update["update_id"]]
            await wait_text(api, customer["id"], "#1001")
            async with http.post(url, json=update, headers=right) as again:  # redelivered
                assert again.status == 200
        await settle(api)
        acks = [m for m in api.messages_in(customer["id"]) if "#1001" in (m.get("text") or "")]
        assert len(acks) == 1
    finally:
        await runtime.stop(kefu)
