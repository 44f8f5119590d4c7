"""Extractive summaries and key phrases."""

from __future__ import annotations

from nlp.pipeline import Pipelines
from nlp.summarize import key_phrases, shorten, summarize_docs


def no_idf(_term: str) -> float | None:
    return None


def test_short_text_is_its_own_summary(pipelines: Pipelines) -> None:
    doc = pipelines.doc("My card was declined.   Can you help?")
    assert summarize_docs([doc], idf=no_idf, lemma_of=pipelines.lemma) == (
        "My card was declined. Can you help?"
    )


def test_the_central_sentences_are_chosen(pipelines: Pipelines) -> None:
    docs = [
        pipelines.doc("Good morning."),
        pipelines.doc("My refund for the broken blender has not arrived."),
        pipelines.doc("I love the weather today."),
        pipelines.doc("The refund for the blender was promised last week."),
        pipelines.doc("Please check the blender refund."),
    ]
    summary = summarize_docs(docs, idf=no_idf, lemma_of=pipelines.lemma)
    assert summary == (
        "My refund for the broken blender has not arrived. "
        "The refund for the blender was promised last week."
    )


def test_summary_limits(pipelines: Pipelines) -> None:
    sentence = "The delivery of my washing machine order was delayed again by the courier company"
    docs = [pipelines.doc(f"{sentence} number {i}.") for i in range(10)]
    summary = summarize_docs(docs, idf=no_idf, lemma_of=pipelines.lemma)
    assert len(summary) <= 300
    assert summary.count(".") <= 2
    one_long = pipelines.doc("word " * 200 + ". And another sentence here. A third one.")
    assert len(summarize_docs([one_long], idf=no_idf, lemma_of=pipelines.lemma)) <= 300


def test_shorten() -> None:
    assert shorten("short") == "short"
    text = "alpha beta " * 50
    cut = shorten(text, 50)
    assert len(cut) <= 50
    assert cut.endswith("…")
    assert not cut[:-1].endswith(" ")


def test_key_phrases_skip_stop_words_and_entities(pipelines: Pipelines) -> None:
    text = (
        "Hi, the tracking number for order AB-123456 does not work. The tracking number is wrong."
    )
    doc = pipelines.doc(text)
    spans = doc.user_data["kefu_entities"]
    phrases = key_phrases([doc], idf=no_idf, lemma_of=pipelines.lemma, entity_spans=[spans])
    assert phrases[0] == "tracking number"
    assert all("ab-123456" not in p.lower() and p not in ("hi", "the") for p in phrases)


def test_key_phrases_in_chinese(pipelines: Pipelines) -> None:
    doc = pipelines.doc("我的快递显示已签收，但是我没有收到快递。快递单号查不到。")
    phrases = key_phrases([doc], idf=no_idf, lemma_of=pipelines.lemma)
    assert phrases
    assert any("快递" in p for p in phrases)
    assert all(len(p) <= 6 for p in phrases)
