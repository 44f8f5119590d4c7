"""Training data, training runs, evaluation and agents' corrections.

* :func:`read_examples` reads a CSV file and says exactly what is wrong with a bad one (a missing
  column, an empty text on row 12, a single class) through :class:`TrainingDataError`.
* :func:`train` tunes and fits a model (see :mod:`nlp.classify`) and saves it as a new version under
  ``models_dir``; the running bot picks it up (``Analyzer.reload_if_changed``). Nothing is replaced
  when the data is bad.
* :func:`train_default` trains the model Kefu ships with, from ``nlp/data/*.csv`` (a few seconds).
* :func:`evaluate` scores the current model on labelled data.
* :func:`train_with_corrections` folds agents' category corrections into the next model, and makes
  it current only if it is not worse on held-out data.
"""

from __future__ import annotations

import csv
import hashlib
import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nlp.classify import (
    OTHER,
    TASKS,
    FitResult,
    Metrics,
    ModelStore,
    ProgressCallback,
    TextClassifier,
    TrainConfig,
    fit_classifier,
    score,
)
from nlp.language import detect_language
from nlp.pipeline import Pipelines, clean_text

DATA_DIR = Path(__file__).with_name("data")
DEFAULT_DATA = {
    "category": DATA_DIR / "category_training.csv",
    "sentiment": DATA_DIR / "sentiment_training.csv",
}
SENTIMENT_LABELS = ("negative", "neutral", "positive")
MAX_TEXT_CHARS = 5000


class TrainingDataError(ValueError):
    """The training or evaluation data cannot be used; the message says why, in plain words."""


@dataclass(frozen=True)
class Example:
    """One labelled text."""

    text: str
    label: str
    language: str | None = None


def _noop(_stage: str, _fraction: float) -> None:
    return None


def check_task(task: str) -> str:
    if task not in TASKS:
        raise TrainingDataError(f"unknown task {task!r}; use one of: {', '.join(TASKS)}")
    return task


def read_examples(
    path: Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    language_column: str | None = "language",
) -> list[Example]:
    """Labelled examples from a CSV file with a header row.

    Raises :class:`TrainingDataError` naming the file, column or row when the file is missing, not
    UTF-8, lacks a column, or has a row with an empty text or label. Row numbers count data rows
    from 1 (the header is line 1 of the file, so row ``n`` starts on line ``n + 1`` for one-line
    rows).
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"{path}: no such file")
    examples: list[Example] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            if not columns:
                raise TrainingDataError(f"{path}: the file is empty (no header row)")
            for needed in (text_column, label_column):
                if needed not in columns:
                    raise TrainingDataError(
                        f"{path}: there is no column {needed!r}; the columns are "
                        + ", ".join(repr(c) for c in columns)
                    )
            has_language = language_column is not None and language_column in columns
            for row_number, row in enumerate(reader, start=1):
                text = (row.get(text_column) or "").strip()
                label = (row.get(label_column) or "").strip()
                if not text:
                    raise TrainingDataError(
                        f"{path}: row {row_number} (line {reader.line_num}) has an empty "
                        f"{text_column!r}"
                    )
                if not label:
                    raise TrainingDataError(
                        f"{path}: row {row_number} (line {reader.line_num}) has an empty "
                        f"{label_column!r}"
                    )
                language = (row.get(language_column) or "").strip() if has_language else ""
                examples.append(Example(text=text, label=label, language=language or None))
    except UnicodeDecodeError as exc:
        raise TrainingDataError(f"{path}: the file is not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise TrainingDataError(f"{path}: not a valid CSV file ({exc})") from exc
    if not examples:
        raise TrainingDataError(f"{path}: the file has a header but no rows")
    return examples


def check_examples(examples: Sequence[Example], task: str, *, what: str = "training data") -> None:
    """Raise :class:`TrainingDataError` when the examples cannot train a ``task`` model."""
    check_task(task)
    if not examples:
        raise TrainingDataError(f"the {what} has no rows")
    counts = Counter(e.label for e in examples)
    if len(counts) < 2:
        only = next(iter(counts))
        raise TrainingDataError(
            f"the {what} has only one label ({only!r}); a classifier needs at least two"
        )
    if task == "sentiment":
        for i, e in enumerate(examples, start=1):
            if e.label not in SENTIMENT_LABELS:
                raise TrainingDataError(
                    f"the {what} has the sentiment label {e.label!r} on row {i}; "
                    f"sentiment labels must be {', '.join(SENTIMENT_LABELS)}"
                )


def examples_sha256(examples: Iterable[Example]) -> str:
    """A fingerprint of the data (labels and texts, in order)."""
    h = hashlib.sha256()
    for e in examples:
        h.update(f"{e.label}\t{e.text}\n".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def split_examples(
    examples: Sequence[Example], fraction: float, *, seed: int = 42
) -> tuple[list[Example], list[Example]]:
    """A stratified split: about ``fraction`` of each label goes to the second list (labels with a
    single example stay in the first)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible split, not a secret
    by_label: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        by_label.setdefault(e.label, []).append(i)
    held: set[int] = set()
    for label in sorted(by_label):
        idx = by_label[label]
        if len(idx) < 2:
            continue
        rng.shuffle(idx)
        k = max(1, round(len(idx) * fraction))
        held.update(idx[: min(k, len(idx) - 1)])
    first = [e for i, e in enumerate(examples) if i not in held]
    second = [e for i, e in enumerate(examples) if i in held]
    return first, second


def validation_fraction(n: int) -> float:
    return 0.1 if n >= 2000 else 0.2


@dataclass(frozen=True)
class TrainingResult:
    """What a training run produced."""

    task: str
    version: str
    path: Path
    labels: tuple[str, ...]
    validation: Metrics | None
    n_train: int
    n_validation: int
    seconds: float
    meta: dict[str, Any] = field(repr=False)


def _prepare(
    pipelines: Pipelines,
    examples: Sequence[Example],
    progress: ProgressCallback,
    start: float,
    end: float,
) -> list[Any]:
    out: list[Any] = []
    batch = 512
    for i in range(0, len(examples), batch):
        chunk = examples[i : i + batch]
        texts = [clean_text(e.text[:MAX_TEXT_CHARS]) for e in chunk]
        langs = [e.language or detect_language(t) for e, t in zip(chunk, texts, strict=True)]
        out += pipelines.prepare(texts, langs)
        progress("reading texts", start + (end - start) * min(1.0, (i + batch) / len(examples)))
    return out


def fit(
    examples: Sequence[Example],
    *,
    task: str,
    validation: Sequence[Example] | None = None,
    pipelines: Pipelines | None = None,
    progress: ProgressCallback | None = None,
    config: TrainConfig | None = None,
    seed: int = 42,
) -> tuple[FitResult, int, int]:
    """Tune and fit a classifier without saving it. Returns the fit and the train/validation
    sizes. Without ``validation`` a stratified part of ``examples`` is used for tuning and the final
    model is refitted on all of them."""
    check_examples(examples, task)
    report = progress or _noop
    pipelines = pipelines or Pipelines()
    if validation:
        check_examples(validation, task, what="validation data")
        train_part, val_part, refit = list(examples), list(validation), False
    else:
        train_part, val_part = split_examples(
            examples, validation_fraction(len(examples)), seed=seed
        )
        refit = True
    n_total = len(train_part) + len(val_part)
    px = _prepare(pipelines, [*train_part, *val_part], report, 0.0, 0.3)
    tx, vx = px[: len(train_part)], px[len(train_part) : n_total]

    def fit_progress(stage: str, fraction: float) -> None:
        report(stage, 0.3 + 0.7 * fraction)

    result = fit_classifier(
        task,
        tx,
        [e.label for e in train_part],
        vx,
        [e.label for e in val_part],
        config=config,
        refit_on_all=refit,
        progress=fit_progress,
    )
    return result, len(train_part), len(val_part)


def new_version(sha: str) -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + sha[:8]


def train(
    examples: Sequence[Example],
    *,
    task: str,
    models_dir: Path,
    validation: Sequence[Example] | None = None,
    pipelines: Pipelines | None = None,
    progress: ProgressCallback | None = None,
    source: str = "file",
    data_path: str | None = None,
    config: TrainConfig | None = None,
) -> TrainingResult:
    """Train a ``task`` model and make it the current one under ``models_dir``.

    Raises :class:`TrainingDataError` (and changes nothing) when the data is bad.
    """
    check_task(task)
    started = time.perf_counter()
    pipelines = pipelines or Pipelines()
    result, n_train, n_val = fit(
        examples,
        task=task,
        validation=validation,
        pipelines=pipelines,
        progress=progress,
        config=config,
    )
    sha = examples_sha256(examples)
    version = new_version(sha)
    seconds = time.perf_counter() - started
    meta = build_meta(
        result,
        sha=sha,
        source=source,
        data_path=data_path,
        n_train=n_train,
        n_validation=n_val,
        seconds=seconds,
        pipelines=pipelines,
    )
    path = ModelStore(models_dir).save(result.classifier, meta, version)
    return TrainingResult(
        task=task,
        version=version,
        path=path,
        labels=result.classifier.labels,
        validation=result.validation,
        n_train=n_train,
        n_validation=n_val,
        seconds=seconds,
        meta=meta,
    )


def build_meta(
    result: FitResult,
    *,
    sha: str,
    source: str,
    data_path: str | None,
    n_train: int,
    n_validation: int,
    seconds: float,
    pipelines: Pipelines,
) -> dict[str, Any]:
    import sklearn
    import spacy

    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source,
        "data_path": data_path,
        "data_sha256": sha,
        "n_train": n_train,
        "n_validation": n_validation,
        "c": result.c,
        "c_scores": {f"{k:g}": v for k, v in result.c_scores.items()},
        "metrics": result.validation.to_dict() if result.validation else None,
        "training_seconds": round(seconds, 3),
        "sklearn_version": sklearn.__version__,
        "spacy_version": spacy.__version__,
        "pipeline": pipelines.pipeline_name or "blank",
    }


def default_examples(task: str) -> list[Example]:
    """The training examples Kefu ships for ``task``."""
    return read_examples(DEFAULT_DATA[check_task(task)])


def train_default(
    task: str,
    *,
    models_dir: Path,
    pipelines: Pipelines | None = None,
    progress: ProgressCallback | None = None,
) -> TrainingResult:
    """Train the default model for ``task`` from the shipped data (a few seconds)."""
    examples = default_examples(task)
    return train(
        examples,
        task=task,
        models_dir=models_dir,
        pipelines=pipelines,
        progress=progress,
        source="default",
        data_path=str(DEFAULT_DATA[task].name),
    )


def evaluate(
    classifier: TextClassifier,
    examples: Sequence[Example],
    *,
    pipelines: Pipelines | None = None,
    progress: ProgressCallback | None = None,
) -> Metrics:
    """Score a classifier on labelled examples (``other`` rows give in-scope accuracy and
    out-of-scope recall)."""
    if not examples:
        raise TrainingDataError("the evaluation data has no rows")
    pipelines = pipelines or Pipelines()
    report = progress or _noop
    prepared = _prepare(pipelines, examples, report, 0.0, 0.8)
    predictions: list[str] = []
    batch = 1024
    for i in range(0, len(prepared), batch):
        predictions += classifier.predict(prepared[i : i + batch])
        report("predicting", 0.8 + 0.2 * min(1.0, (i + batch) / len(prepared)))
    return score([e.label for e in examples], predictions)


# --- corrections ------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def corrections_to_examples(corrections: Iterable[tuple[str, str]]) -> list[Example]:
    """Agents' corrections ``(message text, correct category)`` as training examples.

    Texts are stripped, empty texts or labels are skipped, and when the same text was corrected more
    than once the last correction wins.
    """
    latest: dict[str, Example] = {}
    for text, label in corrections:
        text = clean_text(text or "").strip()
        label = (label or "").strip()
        if not text or not label:
            continue
        key = _normalise(text)
        latest.pop(key, None)  # keep the order of the latest correction
        latest[key] = Example(text=text, label=label, language=detect_language(text))
    return list(latest.values())


def merge_corrections(base: Sequence[Example], corrections: Sequence[Example]) -> list[Example]:
    """``base`` plus ``corrections``; a correction replaces a base example with the same text."""
    corrected = {_normalise(c.text) for c in corrections}
    return [e for e in base if _normalise(e.text) not in corrected] + list(corrections)


@dataclass(frozen=True)
class CorrectionResult:
    """The outcome of :func:`train_with_corrections`."""

    promoted: bool
    old_score: float  # held-out macro-F1 without the corrections
    new_score: float  # held-out macro-F1 with the corrections
    metric: str
    n_corrections: int
    n_heldout: int
    version: str | None  # the new current version when promoted
    training: TrainingResult | None = None


def train_with_corrections(
    base_examples: Sequence[Example],
    corrections: Sequence[tuple[str, str]],
    *,
    models_dir: Path,
    task: str = "category",
    heldout_fraction: float = 0.2,
    seed: int = 42,
    pipelines: Pipelines | None = None,
    progress: ProgressCallback | None = None,
) -> CorrectionResult:
    """Fold corrections into a new model; make it current only if it is not worse on held-out data.

    Both candidates are trained the same way on the same data, except that the new one also sees the
    corrections: the held-out set (a stratified part of the base examples plus a part of the
    corrections) is seen by neither. When the new candidate's macro-F1 on it is at least the old
    one's, a model is trained on all base examples and all corrections and made current; otherwise
    nothing changes.
    """
    check_task(task)
    report = progress or _noop
    pipelines = pipelines or Pipelines()
    fixes = corrections_to_examples(corrections)
    if not fixes:
        raise TrainingDataError("there are no corrections to learn from")
    base = list(base_examples)
    check_examples(merge_corrections(base, fixes), task)
    fix_keys = {_normalise(f.text) for f in fixes}
    base_only = [e for e in base if _normalise(e.text) not in fix_keys]
    base_train, base_held = split_examples(base_only, heldout_fraction, seed=seed)
    fix_train, fix_held = _split_corrections(fixes, heldout_fraction, seed=seed)
    heldout = base_held + fix_held

    def stage(lo: float, hi: float) -> ProgressCallback:
        return lambda s, f: report(s, lo + (hi - lo) * f)

    old_fit, _, _ = fit(base_train, task=task, pipelines=pipelines, progress=stage(0.0, 0.3))
    new_fit, _, _ = fit(
        base_train + fix_train, task=task, pipelines=pipelines, progress=stage(0.3, 0.6)
    )
    prepared = pipelines.prepare(
        [e.text for e in heldout], [e.language or detect_language(e.text) for e in heldout]
    )
    truth = [e.label for e in heldout]
    old_score = score(truth, old_fit.classifier.predict(prepared)).macro_f1
    new_score = score(truth, new_fit.classifier.predict(prepared)).macro_f1
    if new_score + 1e-12 < old_score:
        report("kept the current model", 1.0)
        return CorrectionResult(
            promoted=False,
            old_score=old_score,
            new_score=new_score,
            metric="macro_f1",
            n_corrections=len(fixes),
            n_heldout=len(heldout),
            version=None,
        )
    final = train(
        merge_corrections(base, fixes),
        task=task,
        models_dir=models_dir,
        pipelines=pipelines,
        progress=stage(0.6, 1.0),
        source="corrections",
    )
    return CorrectionResult(
        promoted=True,
        old_score=old_score,
        new_score=new_score,
        metric="macro_f1",
        n_corrections=len(fixes),
        n_heldout=len(heldout),
        version=final.version,
        training=final,
    )


def _split_corrections(
    fixes: Sequence[Example], fraction: float, *, seed: int
) -> tuple[list[Example], list[Example]]:
    """Hold out a part of the corrections (none when there are fewer than five)."""
    if len(fixes) < 5:
        return list(fixes), []
    rng = random.Random(seed)  # noqa: S311 - a reproducible split, not a secret
    idx = list(range(len(fixes)))
    rng.shuffle(idx)
    held = set(idx[: max(1, round(len(fixes) * fraction))])
    return (
        [f for i, f in enumerate(fixes) if i not in held],
        [f for i, f in enumerate(fixes) if i in held],
    )


__all__ = [
    "OTHER",
    "CorrectionResult",
    "Example",
    "TrainingDataError",
    "TrainingResult",
    "corrections_to_examples",
    "default_examples",
    "evaluate",
    "merge_corrections",
    "read_examples",
    "train",
    "train_default",
    "train_with_corrections",
]
