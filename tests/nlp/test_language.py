"""Script-based language detection."""

from __future__ import annotations

import pytest

from nlp.language import detect_language, pipeline_language


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Where is my order?", "en"),
        ("refund", "en"),
        ("iPhone 15", "en"),
        ("我的订单还没到", "zh"),
        ("我的iPhone登录不了app", "zh"),
        ("訂單還沒到", "zh"),
        ("注文がまだ届きません", "ja"),
        ("주문이 아직 안 왔어요", "ko"),
        ("Где мой заказ?", "ru"),
        ("Де моє замовлення? Її ще немає", "uk"),
        ("أين طلبي؟", "ar"),
        ("¿Dónde está mi pedido? Gracias", "es"),
        ("Bonjour, où est ma commande ? Merci", "fr"),
        ("Hallo, wo ist meine Bestellung? Danke", "de"),
        ("", "und"),
        ("12345 !!!", "und"),
        ("👍🙂", "und"),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_a_few_english_words_in_chinese_text_stay_chinese() -> None:
    assert detect_language("订单号 AB-123456 的快递 tracking 一直没更新") == "zh"


@pytest.mark.parametrize(
    ("language", "pipeline"),
    [("zh", "zh"), ("ja", "zh"), ("en", "en"), ("ru", "en"), ("und", "en")],
)
def test_pipeline_language(language: str, pipeline: str) -> None:
    assert pipeline_language(language) == pipeline
