"""Pure text helpers: splitting for Telegram's limits and escaping."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from bot import texts


def test_short_text_is_one_chunk() -> None:
    assert texts.split_text("hello") == ["hello"]


def test_split_prefers_line_breaks() -> None:
    text = "a" * 3000 + "\n" + "b" * 3000
    assert texts.split_text(text) == ["a" * 3000, "b" * 3000]


def test_split_counts_utf16_units() -> None:
    chunks = texts.split_text("😀" * 3000)  # 6000 UTF-16 units
    assert [texts.telegram_length(c) for c in chunks] == [4096, 1904]


@given(st.text(min_size=0, max_size=12000))
def test_split_keeps_every_chunk_within_the_limit(text: str) -> None:
    chunks = texts.split_text(text)
    assert all(texts.telegram_length(c) <= 4096 for c in chunks)
    if len(text) <= 4096:
        assert chunks == [text]


def test_split_escaped_escapes_user_text_and_keeps_header() -> None:
    parts = texts.split_escaped("<b>Bob</b>", "<i>&" + "x" * 5000)
    assert parts[0].startswith("<b>Bob</b>\n&lt;i&gt;&amp;x")
    assert len(parts) == 2
    assert all("<i>" not in p for p in parts)


def test_customer_texts_escape_values() -> None:
    assert texts.customer_text("en", "start", name="<b>&").startswith("Hello, &lt;b&gt;&amp;!")
    assert texts.customer_text("zh", "ack_new", number=1042).startswith("感谢您的留言")
    assert "#1042" in texts.customer_text("fr", "ack_new", number=1042)  # unknown -> English


def test_format_duration() -> None:
    cases = [(timedelta(seconds=45), "45s"), (timedelta(minutes=12), "12m")]
    cases += [(timedelta(hours=3, minutes=5), "3h 05m"), (timedelta(days=2, hours=4), "2d 4h")]
    assert [texts.format_duration(d) for d, _ in cases] == [expected for _, expected in cases]


def test_every_customer_key_exists_in_both_languages() -> None:
    assert set(texts._CUSTOMER["en"]) == set(texts._CUSTOMER["zh"])
