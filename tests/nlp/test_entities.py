"""Entity extraction on a table of English and Chinese examples, and masking."""

from __future__ import annotations

from pathlib import Path

import pytest
import spacy

from nlp.entities import (
    CARD,
    DATE,
    EMAIL,
    MONEY,
    ORDER,
    PHONE,
    URL,
    Entity,
    EntityRules,
    luhn_valid,
    mask_entities,
    mask_text,
    mask_value,
    merge_entities,
)
from nlp.pipeline import PipelineError, Pipelines, doc_entity_spans

EXAMPLES: list[tuple[str, list[tuple[str, str]]]] = [
    # English
    ("Mail me at john.doe@example.com please", [(EMAIL, "john.doe@example.com")]),
    ("Call me on +44 20 7946 0958 after 5", [(PHONE, "+44 20 7946 0958")]),
    ("my number is (555) 123-4567.", [(PHONE, "(555) 123-4567")]),
    ("Where is order #558201?", [(ORDER, "#558201")]),
    ("order AB-123456 has not arrived", [(ORDER, "AB-123456")]),
    ("My order number is 20240501778 and it is late", [(ORDER, "20240501778")]),
    ("I was charged $25.50 twice", [(MONEY, "$25.50")]),
    ("They took 1,200 dollars from my account", [(MONEY, "1,200 dollars")]),
    ("Refund of €40 please", [(MONEY, "€40")]),
    ("It was delivered on 03/05/2024", [(DATE, "03/05/2024")]),
    ("I ordered it on March 3rd, 2024", [(DATE, "March 3rd, 2024")]),
    ("Can it come tomorrow?", [(DATE, "tomorrow")]),
    ("I called last Monday", [(DATE, "last Monday")]),
    ("See https://example.com/orders/17?x=1.", [(URL, "https://example.com/orders/17?x=1")]),
    ("www.example.com/help is broken", [(URL, "www.example.com/help")]),
    ("charge my card 4111 1111 1111 1111 instead", [(CARD, "4111 1111 1111 1111")]),
    ("card 5500-0000-0000-0004 was declined", [(CARD, "5500-0000-0000-0004")]),
    ("card number 4111111111111111", [(CARD, "4111111111111111")]),
    ("Nothing to find here, just words.", []),
    ("I have 3 kids and 2 dogs", []),
    # Chinese
    ("我的邮箱是zhang.wei@example.cn，请回复", [(EMAIL, "zhang.wei@example.cn")]),
    ("电话13812345678，随时联系", [(PHONE, "13812345678")]),
    ("手机号138-1234-5678", [(PHONE, "138-1234-5678")]),
    ("座机010-12345678", [(PHONE, "010-12345678")]),
    ("订单号AB-123456还没发货", [(ORDER, "AB-123456")]),
    ("订单号：2024050112345 一直没到", [(ORDER, "2024050112345")]),
    ("扣了我100元", [(MONEY, "100元")]),
    ("退款¥59.90还没到账", [(MONEY, "¥59.90")]),
    ("付了五十块钱", [(MONEY, "五十块钱")]),
    ("3月5日下的单", [(DATE, "3月5日")]),
    ("2024年3月5日下的单", [(DATE, "2024年3月5日")]),
    ("明天能送到吗", [(DATE, "明天")]),
    ("上周五就发货了", [(DATE, "上周五")]),
    ("看这里 https://example.cn/a，打不开", [(URL, "https://example.cn/a")]),
    ("卡号4111 1111 1111 1111被扣款", [(CARD, "4111 1111 1111 1111")]),
    ("你好，我想问一下", []),
]


@pytest.mark.parametrize(("text", "expected"), EXAMPLES)
def test_entities_from_the_pipeline(
    pipelines: Pipelines, text: str, expected: list[tuple[str, str]]
) -> None:
    doc = pipelines.doc(text)
    found = [(label, text[s:e]) for label, s, e in doc_entity_spans(doc)]
    assert found == expected


def test_several_entities_in_one_message_keep_exact_offsets(pipelines: Pipelines) -> None:
    text = (
        "Order #558201: I paid $25.50 on 03/05/2024 with card 4111 1111 1111 1111. "
        "Write to john@example.com or call +1 (555) 123-4567."
    )
    spans = doc_entity_spans(pipelines.doc(text))
    assert [(label, text[s:e]) for label, s, e in spans] == [
        (ORDER, "#558201"),
        (MONEY, "$25.50"),
        (DATE, "03/05/2024"),
        (CARD, "4111 1111 1111 1111"),
        (EMAIL, "john@example.com"),
        (PHONE, "+1 (555) 123-4567"),
    ]


def test_doc_ents_are_set_for_spacy_users(pipelines: Pipelines) -> None:
    doc = pipelines.doc("Mail john@example.com tomorrow")
    assert [(e.label_, e.text) for e in doc.ents] == [
        (EMAIL, "john@example.com"),
        (DATE, "tomorrow"),
    ]


def test_order_pattern_is_configurable() -> None:
    rules = EntityRules.create(r"\bKF\d{4}\b")
    found = [
        (label, "KF1234 and AB-123456"[s:e]) for label, s, e in rules.find("KF1234 and AB-123456")
    ]
    assert (ORDER, "KF1234") in found
    assert (ORDER, "AB-123456") not in found


def test_configured_pattern_reaches_the_pipeline() -> None:
    pipelines = Pipelines(order_pattern=r"\bKF\d{4}\b")
    text = "package KF1234 is late"
    assert [(label, text[s:e]) for label, s, e in doc_entity_spans(pipelines.doc(text))] == [
        (ORDER, "KF1234")
    ]


def test_a_bad_order_pattern_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="order number pattern"):
        EntityRules.create("([unclosed")


def test_luhn() -> None:
    assert luhn_valid("4111111111111111") is True
    assert luhn_valid("4111111111111112") is False
    assert luhn_valid("79927398713") is True


def test_sixteen_digits_failing_luhn_and_ungrouped_are_not_a_card() -> None:
    assert [c for c in EntityRules.create().find("ref 1234567812345678") if c[0] == CARD] == []


def test_merge_prefers_rank_then_length() -> None:
    merged = merge_entities([(PHONE, 0, 10), (CARD, 0, 19), (DATE, 20, 30), ("PERSON", 22, 25)])
    assert merged == [(CARD, 0, 19), (DATE, 20, 30)]


@pytest.mark.parametrize(
    ("label", "value", "masked"),
    [
        (CARD, "4111 1111 1111 1234", "•••• 1234"),
        (CARD, "4111-1111-1111-1234", "•••• 1234"),
        (EMAIL, "john.doe@example.com", "jo••••••@example.com"),
        (EMAIL, "ab@example.com", "a•@example.com"),
        (PHONE, "+44 20 7946 0958", "+44 •• •••• ••58"),
        (PHONE, "13812345678", "13•••••••78"),
        (ORDER, "AB-123456", "AB-123456"),
    ],
)
def test_mask_value(label: str, value: str, masked: str) -> None:
    assert mask_value(label, value) == masked


def test_mask_entities_uses_offsets_and_leaves_other_entities() -> None:
    text = "Card 4111 1111 1111 1111 for order AB-123456"
    entities = [Entity(CARD, "4111 1111 1111 1111", 5, 24), Entity(ORDER, "AB-123456", 35, 44)]
    assert mask_entities(text, entities) == "Card •••• 1111 for order AB-123456"


def test_mask_entities_accepts_stored_dicts_with_stale_offsets() -> None:
    text = "…call 13812345678 now"
    stored = [{"label": PHONE, "text": "13812345678", "start": 0, "end": 11}]
    assert mask_entities(text, stored) == "…call 13•••••••78 now"


def test_mask_entities_masks_even_without_entities() -> None:
    assert mask_entities("mail ann.lee@example.com", []) == "mail an•••••@example.com"
    assert mask_entities("", None) == ""


def test_mask_text_in_chinese() -> None:
    assert (
        mask_text("我的卡号4111111111111111，电话13812345678")
        == "我的卡号•••• 1111，电话13•••••••78"
    )


def test_an_installed_pipeline_gets_kefu_rules(tmp_path: Path) -> None:
    saved = spacy.blank("en")
    saved.add_pipe("lemmatizer", config={"mode": "lookup"})
    saved.initialize()
    saved.to_disk(tmp_path / "my_pipeline")
    pipelines = Pipelines(pipeline_name=str(tmp_path / "my_pipeline"))
    nlp = pipelines.nlp("en")
    assert nlp.pipe_names == ["lemmatizer", "sentencizer", "entity_ruler", "kefu_entities"]
    text = "Cards were charged on 03/05/2024. Mail ann@example.com"
    doc = pipelines.doc(text)
    assert [(label, text[s:e]) for label, s, e in doc_entity_spans(doc)] == [
        (DATE, "03/05/2024"),
        (EMAIL, "ann@example.com"),
    ]
    assert len(list(doc.sents)) == 2
    assert pipelines.lemma(doc[0]) == "card"


def test_a_missing_installed_pipeline_is_a_clear_error() -> None:
    with pytest.raises(PipelineError, match="could not be loaded"):
        Pipelines(pipeline_name="xx_kefu_not_installed")
