"""The knowledge base: the shipped answers and loading a business's own file."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlp.knowledge import DEFAULT_PATH, KnowledgeBase, KnowledgeBaseError, normalise_language
from nlp.training import default_examples

SELF_SERVICE = ("account", "delivery", "returns", "cancellation", "billing")


def test_the_shipped_file_answers_self_service_categories_in_english_and_chinese() -> None:
    kb = KnowledgeBase.default()
    assert kb.source == DEFAULT_PATH
    for category in SELF_SERVICE:
        en = kb.answer(category, "en")
        zh = kb.answer(category, "zh")
        assert en is not None and len(en) > 80, category
        assert zh is not None and len(zh) > 40, category
        assert any("\u4e00" <= ch <= "\u9fff" for ch in zh)
    assert "password" in (kb.answer("account", "en") or "").lower()
    assert "密码" in (kb.answer("account", "zh") or "")
    assert "refund" in (kb.answer("returns", "en") or "").lower()


def test_people_handle_complaints_and_out_of_scope_messages() -> None:
    kb = KnowledgeBase.default()
    for category in ("complaint", "other", "praise"):
        assert kb.answer(category, "en") is None


def test_shipped_categories_are_model_categories() -> None:
    labels = {e.label for e in default_examples("category")}
    assert set(KnowledgeBase.default().categories) <= labels


@pytest.mark.parametrize(
    ("code", "base"), [("zh-Hans", "zh"), ("zh_CN", "zh"), ("EN-us", "en"), ("fr", "fr")]
)
def test_normalise_language(code: str, base: str) -> None:
    assert normalise_language(code) == base


def test_language_variants_and_missing_languages() -> None:
    kb = KnowledgeBase.default()
    assert kb.answer("delivery", "zh-TW") == kb.answer("delivery", "zh")
    assert kb.answer("delivery", "fr") is None
    assert kb.answer("delivery", "") is None
    assert kb.answer("no-such-category", "en") is None


def test_a_business_file_with_a_fallback_language(tmp_path: Path) -> None:
    path = tmp_path / "kb.yaml"
    path.write_text(
        "fallback_language: en\n"
        "answers:\n"
        "  delivery:\n"
        "    en: We deliver in 2 days.\n"
        "    es: Entregamos en 2 días.\n"
        "  returns:\n"
        "    en: ''\n"
        "  account:\n",
        "utf-8",
    )
    kb = KnowledgeBase.load(path)
    assert kb.answer("delivery", "es") == "Entregamos en 2 días."
    assert kb.answer("delivery", "de") == "We deliver in 2 days."
    assert kb.answer("returns", "en") is None
    assert kb.categories == ("delivery",)
    assert kb.languages("delivery") == ("en", "es")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("answers: [1, 2]\n", "'answers' must map"),
        ("answers:\n  delivery: just text\n", "must map language codes"),
        ("answers:\n  delivery:\n    en: [a, b]\n", "must be text"),
        ("answers: {delivery: {en: x}\n", "not valid YAML"),
        ("- a list\n", "top level"),
        ("fallback_language: 3\nanswers: {}\n", "fallback_language"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "kb.yaml"
    path.write_text(content, "utf-8")
    with pytest.raises(KnowledgeBaseError, match=message):
        KnowledgeBase.load(path)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeBaseError, match="cannot read"):
        KnowledgeBase.load(tmp_path / "missing.yaml")
