"""Urgency rules: real threats are urgent; ordinary questions that share a word are not."""

from __future__ import annotations

import pytest

from nlp.analysis import Analyzer


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("I am switching to a competitor", "threat_to_leave"),
        ("I will take you to court over this", "legal"),
        ("我要找媒体曝光你们", "legal"),
    ],
)
def test_threats_are_urgent(analyzer: Analyzer, text: str, reason: str) -> None:
    assert reason in analyzer.analyze(text).urgency_reasons


@pytest.mark.parametrize(
    "text",
    ["Can I switch to another payment method?", "Is there a food court near the store?"],
)
def test_ordinary_questions_are_not(analyzer: Analyzer, text: str) -> None:
    reasons = analyzer.analyze(text).urgency_reasons
    assert "legal" not in reasons and "threat_to_leave" not in reasons
