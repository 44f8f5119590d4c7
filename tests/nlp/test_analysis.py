"""Analyzer: categories, sentiment, urgency, entities, summaries, reloading, and robustness."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlp.analysis import Analysis, Analyzer, Sentiment, Urgency, assess_urgency
from nlp.classify import ModelStore
from nlp.entities import CARD, EMAIL, ORDER
from nlp.training import Example, train

ANY_CHAR = st.one_of(
    st.characters(),
    st.characters(categories=["Cs"]),  # lone surrogates can reach a str too
    st.sampled_from(list("我的订单没到 @.#$€0123456789\n\tABCxyz!?")),
)
ANY_TEXT = st.text(ANY_CHAR, max_size=300)


def check(result: Analysis, text: str, analyzer: Analyzer) -> None:
    assert isinstance(result, Analysis)
    assert result.category in analyzer.categories
    assert 0.0 <= result.category_confidence <= 1.0
    assert 0.0 <= result.sentiment_confidence <= 1.0
    assert isinstance(result.sentiment, Sentiment)
    assert isinstance(result.urgency, Urgency)
    assert len(result.summary) <= 300
    for e in result.entities:
        assert 0 <= e.start < e.end <= len(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=ANY_TEXT)
def test_analyze_never_raises_on_any_text(analyzer: Analyzer, text: str) -> None:
    check(analyzer.analyze(text), text, analyzer)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(piece=st.text(ANY_CHAR, min_size=1, max_size=40))
def test_analyze_never_raises_on_10000_characters(analyzer: Analyzer, piece: str) -> None:
    text = (piece * (10_000 // len(piece) + 1))[:10_000]
    assert len(text) == 10_000
    check(analyzer.analyze(text), text, analyzer)


def test_analyze_on_empty_and_random_long_text(analyzer: Analyzer) -> None:
    empty = analyzer.analyze("")
    assert (empty.language, empty.category, empty.sentiment) == ("und", "other", Sentiment.NEUTRAL)
    assert empty.summary == ""
    rng = random.Random(7)
    text = "".join(chr(rng.randint(1, 0x2FFFF)) for _ in range(10_000))
    check(analyzer.analyze(text), text, analyzer)


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("I can't remember my password and the reset link is not coming", "account"),
        ("Where is my parcel? Tracking has not moved for a week", "delivery"),
        ("Please cancel my monthly subscription", "cancellation"),
        ("You charged my credit card twice for one order", "billing"),
        ("The item came broken, how do I send it back for a refund?", "returns"),
        ("Thank you so much, the support team was fantastic", "praise"),
        ("The app crashes as soon as I open it", "technical"),
        ("我忘记密码了，登录不了", "account"),
        ("我的快递到哪了？一个星期都没更新", "delivery"),
        ("请帮我取消订阅", "cancellation"),
        ("同一笔订单扣了我两次款", "billing"),
        ("非常感谢，客服很耐心", "praise"),
        ("应用一打开就闪退", "technical"),
    ],
)
def test_clear_messages_get_their_category(analyzer: Analyzer, text: str, category: str) -> None:
    assert analyzer.analyze(text).category == category


@pytest.mark.parametrize(
    "text",
    ["What's the capital of France?", "Can you write me a poem about the sea?", "今天天气怎么样"],
)
def test_out_of_scope_messages_are_other(analyzer: Analyzer, text: str) -> None:
    assert analyzer.analyze(text).category == "other"


@pytest.mark.parametrize(
    ("text", "sentiment"),
    [
        ("This is terrible, I am really angry with your service", Sentiment.NEGATIVE),
        ("Thanks, great service and fast delivery!", Sentiment.POSITIVE),
        ("What are your opening hours on Saturday?", Sentiment.NEUTRAL),
        ("太差了，我非常生气", Sentiment.NEGATIVE),
        ("谢谢，服务很好", Sentiment.POSITIVE),
        ("周六几点开门？", Sentiment.NEUTRAL),
    ],
)
def test_sentiment(analyzer: Analyzer, text: str, sentiment: Sentiment) -> None:
    assert analyzer.analyze(text).sentiment is sentiment


def test_language_and_entities_in_the_analysis(analyzer: Analyzer) -> None:
    text = "Order AB-123456 was charged to 4111 1111 1111 1111, mail me at ann@example.com"
    result = analyzer.analyze(text)
    assert result.language == "en"
    assert [(e.label, e.text) for e in result.entities] == [
        (ORDER, "AB-123456"),
        (CARD, "4111 1111 1111 1111"),
        (EMAIL, "ann@example.com"),
    ]
    assert all(text[e.start : e.end] == e.text for e in result.entities)
    assert analyzer.analyze("订单AB-123456还没到").language == "zh"


def urgency(
    text: str,
    sentiment: Sentiment = Sentiment.NEUTRAL,
    category: str = "billing",
    repeated_contact: int = 0,
) -> tuple[Urgency, tuple[str, ...]]:
    return assess_urgency(
        text,
        sentiment=sentiment,
        sentiment_confidence=0.9,
        category=category,
        repeated_contact=repeated_contact,
    )


def test_urgency_rules() -> None:
    assert urgency("I will contact my lawyer") == (Urgency.HIGH, ("legal",))
    assert urgency("I'm switching to a competitor") == (Urgency.HIGH, ("threat_to_leave",))
    assert urgency("urgent: refund please") == (Urgency.NORMAL, ("urgent_words",))
    assert urgency("WHERE IS MY REFUND, ANSWER ME") == (Urgency.NORMAL, ("all_caps",))
    assert urgency("where is my refund", repeated_contact=2) == (
        Urgency.HIGH,
        ("repeated_contact",),
    )
    assert urgency("please hurry, it's urgent", Sentiment.NEGATIVE) == (
        Urgency.HIGH,
        ("urgent_words", "negative_sentiment"),
    )
    assert urgency("这是第三次联系你们了", Sentiment.NEGATIVE)[0] is Urgency.HIGH
    assert urgency("我要去消协投诉") == (Urgency.HIGH, ("legal",))
    assert urgency("Thanks!", Sentiment.POSITIVE, "praise") == (Urgency.LOW, ())
    assert urgency("how do I pay?") == (Urgency.NORMAL, ())


def test_urgency_in_the_analysis(analyzer: Analyzer) -> None:
    angry = analyzer.analyze(
        "THIS IS THE THIRD TIME I WRITE. REFUND ME NOW OR I WILL TAKE YOU TO COURT",
        repeated_contact=2,
    )
    assert angry.urgency is Urgency.HIGH
    assert {"legal", "repeated_contact", "all_caps"} <= set(angry.urgency_reasons)
    assert analyzer.analyze("Thank you, lovely service!").urgency is Urgency.LOW


def test_single_message_summary(analyzer: Analyzer) -> None:
    short = analyzer.analyze("  Where is my order?\n It was due on Monday.  ")
    assert short.summary == "Where is my order? It was due on Monday."
    long_text = (
        "Hello. I hope you are well. I ordered a blue kettle three weeks ago and the kettle never "
        "arrived. The tracking page for the kettle order says delivered but there was no kettle. "
        "My neighbour did not get it either. I have two kids and a dog. Please send the kettle "
        "again or refund the kettle order. Thanks. " * 2
    )
    result = analyzer.analyze(long_text)
    assert 0 < len(result.summary) <= 300
    assert "kettle" in result.summary
    assert result.summary.count(".") <= 2
    assert "kettle" in " ".join(result.key_phrases)


def test_summarize_ticket(analyzer: Analyzer) -> None:
    texts = [
        "Hi there!",
        "My order AB-123456 has not arrived. The tracking has not changed since Monday.",
        "I paid with card 4111 1111 1111 1111 and I want to know where the parcel is.",
        "Still no parcel today. Where is the parcel?",
        "",
    ]
    summary = analyzer.summarize_ticket(texts)
    assert 0 < len(summary.summary) <= 300
    assert summary.summary.count(".") + summary.summary.count("?") <= 2
    assert "parcel" in summary.summary
    assert [(e.label, e.text) for e in summary.entities] == [
        ("ORDER", "AB-123456"),
        ("DATE", "since Monday"),
        ("CARD", "4111 1111 1111 1111"),
        ("DATE", "today"),
    ]
    assert "4111 1111" not in summary.masked_summary
    assert any("parcel" in p or "tracking" in p for p in summary.key_phrases)
    assert analyzer.summarize_ticket([]).summary == ""
    assert analyzer.summarize_ticket(["   "]).key_phrases == ()


def test_summarize_ticket_in_chinese(analyzer: Analyzer) -> None:
    texts = [
        "你好",
        "我的订单三天前就显示已签收，但是我没有收到快递。",
        "快递到底在哪里？请帮我查一下快递。",
    ]
    summary = analyzer.summarize_ticket(texts)
    assert 0 < len(summary.summary) <= 300
    assert "快递" in summary.summary
    assert " " not in summary.summary  # Chinese sentences are joined without spaces
    assert any("快递" in p for p in summary.key_phrases)


def test_summarize_many_messages_is_fast_enough(analyzer: Analyzer) -> None:
    texts = [f"Order {i} is late and the tracking number does not work." for i in range(2000)]
    summary = analyzer.summarize_ticket(texts)
    assert len(summary.summary) <= 300
    assert "tracking number" in " ".join(summary.key_phrases)


def test_analyze_many_matches_analyze(analyzer: Analyzer) -> None:
    texts = ["Where is my order?", "我忘记密码了", "", "Great service, thanks!"]
    assert analyzer.analyze_many(texts) == [analyzer.analyze(t) for t in texts]


async def test_aanalyze_runs_off_the_event_loop(analyzer: Analyzer) -> None:
    result = await analyzer.aanalyze("Where is my order?")
    assert result.category == "delivery"


def test_mask(analyzer: Analyzer) -> None:
    assert analyzer.mask("card 4111111111111111") == "card •••• 1111"


def test_reload_picks_up_a_new_model(models_dir: Path, tmp_path: Path) -> None:
    own = tmp_path / "models"
    shutil.copytree(models_dir, own)
    analyzer = Analyzer(models_dir=own)
    assert analyzer.reload_if_changed() is False
    examples = [Example(f"refund for order {i}", "refunds") for i in range(8)] + [
        Example(f"my login {i} fails", "login") for i in range(8)
    ]
    train(examples, task="category", models_dir=own)
    assert analyzer.reload_if_changed() is True
    assert analyzer.categories == ("login", "refunds")
    assert analyzer.analyze("refund for my order please").category == "refunds"
    assert analyzer.reload_if_changed() is False


def test_a_damaged_model_is_replaced_by_the_default(models_dir: Path, tmp_path: Path) -> None:
    own = tmp_path / "models"
    shutil.copytree(models_dir, own)
    store = ModelStore(own)
    version = store.current_version("sentiment")
    assert version is not None
    (own / "sentiment" / version / "vocab.json").write_text("{broken", "utf-8")
    analyzer = Analyzer(models_dir=own)
    assert store.current_version("sentiment") != version
    assert analyzer.analyze("Thanks, great!").sentiment is Sentiment.POSITIVE


def test_the_default_model_is_retrained_when_the_shipped_data_changes(
    models_dir: Path, tmp_path: Path
) -> None:
    own = tmp_path / "models"
    shutil.copytree(models_dir, own)
    store = ModelStore(own)
    version = store.current_version("category")
    assert version is not None
    meta_path = own / "category" / version / "meta.json"
    meta = json.loads(meta_path.read_text("utf-8"))
    meta["data_sha256"] = "0" * 64
    meta_path.write_text(json.dumps(meta), "utf-8")
    Analyzer(models_dir=own)
    assert store.current_version("category") != version
    # A model trained from the user's own data is never replaced that way.
    custom = train(
        [Example("a b c", "x"), Example("d e f", "y"), Example("a c", "x"), Example("d f", "y")],
        task="category",
        models_dir=own,
    )
    Analyzer(models_dir=own)
    assert store.current_version("category") == custom.version
