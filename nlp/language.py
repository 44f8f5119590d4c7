"""Script-based language detection.

Kefu needs the language of a message for two things: to pick the spaCy pipeline (English-style
tokenisation or per-character Chinese tokenisation) and to pick the language of the automatic reply.
Counting the scripts the letters belong to settles most cases (Han, kana, Hangul, Cyrillic, Arabic,
...). Latin-script text is told apart by a handful of very frequent function words per language and
is English when nothing else wins.

The result is an ISO 639-1 code, or ``"und"`` (ISO 639-2 "undetermined") when the text has no
letters at all (an emoji, a number, an empty message).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

UNDETERMINED = "und"

# Function words that are frequent in one Latin-script language and rare in the others.


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_LATIN_MARKERS: dict[str, frozenset[str]] = {
    "en": _words(
        """the and is are was were you your my i it this that have has with for not what how
        please can could would will do does did of to in on at be been thanks thank hi hello
        order refund account"""
    ),
    "es": _words(
        """el los las del que por para una unos está están es mi mis tu pero como qué cómo
        gracias hola pedido cuenta también muy porque cuando"""
    ),
    "pt": _words(
        """não você obrigado obrigada olá pedido conta meu minha está são uma para isso como
        também muito porque quando"""
    ),
    "fr": _words(
        """le les des est une je vous mon ma mes pas avec pour que qui dans sur bonjour merci
        commande compte très mais comment pourquoi"""
    ),
    "de": _words(
        """der die das und ist nicht ich sie mein meine mit für ein eine auf bitte danke hallo
        bestellung konto sehr aber wie warum"""
    ),
    "it": _words(
        """il gli che non sono mio mia con per una della grazie ciao ordine conto molto ma come
        perché è"""
    ),
    "nl": _words(
        """het een niet ik mijn met voor van dat zijn bedankt hallo bestelling account heel maar
        hoe waarom"""
    ),
    "id": _words(
        """saya tidak yang dan dengan untuk ini itu akun pesanan terima kasih tolong bisa sudah
        belum"""
    ),
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_ADDRESS = re.compile(r"\S+@\S+|\S*://\S+|www\.\S+", re.IGNORECASE)


def _script(ch: str) -> str | None:
    """The script of one character, for the scripts that decide a language; None for others."""
    cp = ord(ch)
    if (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2FA1F
        or 0xF900 <= cp <= 0xFAFF
    ):
        return "han"
    if 0x3040 <= cp <= 0x30FF or 0x31F0 <= cp <= 0x31FF or 0xFF66 <= cp <= 0xFF9F:
        return "kana"
    if 0xAC00 <= cp <= 0xD7AF or 0x1100 <= cp <= 0x11FF or 0x3130 <= cp <= 0x318F:
        return "hangul"
    if 0x0400 <= cp <= 0x04FF:
        return "cyrillic"
    if 0x0600 <= cp <= 0x06FF or 0x0750 <= cp <= 0x077F:
        return "arabic"
    if 0x0590 <= cp <= 0x05FF:
        return "hebrew"
    if 0x0370 <= cp <= 0x03FF:
        return "greek"
    if 0x0E00 <= cp <= 0x0E7F:
        return "thai"
    if 0x0900 <= cp <= 0x097F:
        return "devanagari"
    if ch.isalpha() and (cp < 0x0250 or 0x1E00 <= cp <= 0x1EFF or 0xFF21 <= cp <= 0xFF5A):
        return "latin"
    return None


_SIMPLE_SCRIPTS = {
    "hangul": "ko",
    "greek": "el",
    "hebrew": "he",
    "thai": "th",
    "devanagari": "hi",
}


def detect_language(text: str, *, max_chars: int = 2000) -> str:
    """The language of ``text`` as an ISO 639-1 code (``"en"``, ``"zh"``, ...) or ``"und"``.

    Only the first ``max_chars`` characters are looked at; this is cheap (a few microseconds for a
    chat message).
    """
    sample = text[:max_chars]
    counts: Counter[str] = Counter()
    for ch in sample:
        if ch.isascii():
            if ch.isalpha():
                counts["latin"] += 1
            continue
        script = _script(ch)
        if script is not None:
            counts[script] += 1
    if not counts:
        return UNDETERMINED
    # Japanese mixes kana and Han; any real amount of kana means Japanese.
    if counts["kana"] and counts["kana"] * 5 >= counts["han"]:
        return "ja"
    non_latin = {k: v for k, v in counts.items() if k != "latin"}
    if non_latin:
        script, n = max(non_latin.items(), key=lambda kv: kv[1])
        # Chinese characters weigh more than Latin letters: one character is about one word.
        weight = 3 if script in {"han", "kana"} else 1
        if n * weight >= counts["latin"] * 0.5:
            return _non_latin_language(script, sample)
    return _latin_language(sample)


def _non_latin_language(script: str, sample: str) -> str:
    if script == "han":
        return "zh"
    if script == "kana":
        return "ja"
    if script == "cyrillic":
        return "uk" if any(ch in "іїєґІЇЄҐ" for ch in sample) else "ru"
    if script == "arabic":
        return "fa" if any(ch in "پچژگ" for ch in sample) else "ar"
    return _SIMPLE_SCRIPTS.get(script, UNDETERMINED)


def _latin_language(sample: str) -> str:
    sample = _ADDRESS.sub(" ", sample)
    words = [w.lower() for w in _WORD.findall(sample)[:200]]
    if not words:
        return UNDETERMINED
    scores = {
        lang: sum(1 for w in words if w in markers) for lang, markers in _LATIN_MARKERS.items()
    }
    best = max(scores.items(), key=lambda kv: kv[1])
    # English wins ties and texts with no function words at all ("refund", "iPhone 15").
    if best[1] == 0 or best[1] <= scores["en"]:
        return "en"
    if any(unicodedata.combining(c) for c in unicodedata.normalize("NFD", sample)) or best[1] >= 2:
        return best[0]
    return "en"


def pipeline_language(language: str) -> str:
    """The spaCy pipeline that tokenises a language: ``"zh"`` (per character) or ``"en"``."""
    return "zh" if language in {"zh", "ja"} else "en"
