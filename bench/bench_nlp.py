"""Benchmark of Kefu's message understanding (``nlp``): accuracy and speed.

Accuracy: Kefu's classifier (TF-IDF over lemmas and character n-grams, a linear model, C tuned on
validation data) against the plain scikit-learn pipeline ``TfidfVectorizer()`` +
``LogisticRegression()`` with default settings, trained and tested on the same split in one run, on
the public data sets in ``../shared/data`` (evaluation only; they are not shipped):

* ``banking77``: 77 intents, official train/test split (Kefu tunes on a stratified 10% of train);
* ``bitext_support``: 27 intents, official train/dev/test split (Kefu tunes on dev);
* ``airline_sentiment``: 3 classes, stratified 80/20 split, seed 42;
* ``zh_online_shopping_10_cats`` and ``zh_waimai_10k``: 2 classes, stratified 80/20, seed 42.

It also scores the shipped models (trained only on Kefu's own examples) on public data they never
saw: categories on bitext's test set (intents mapped to Kefu's categories), sentiment on the airline
and food-delivery test sets.

Speed: the full ``Analyzer.analyze()`` (language, both models, entities, urgency, summary, key
phrases) on single messages (median and p99 latency) and ``analyze_many`` in batches (throughput).

Run from the repository root:

    .venv/bin/python bench/bench_nlp.py                 # everything (about 10-15 minutes)
    .venv/bin/python bench/bench_nlp.py --only banking77,airline_sentiment
    .venv/bin/python bench/bench_nlp.py --skip-datasets  # latency and shipped models only
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nlp.analysis import Analyzer  # noqa: E402
from nlp.classify import score  # noqa: E402
from nlp.pipeline import Pipelines  # noqa: E402
from nlp.training import Example, evaluate, fit  # noqa: E402

Rows = list[dict[str, str]]


def read_csv(path: Path) -> Rows:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


@dataclass
class Split:
    name: str
    task: str
    train: list[Example]
    test: list[Example]
    validation: list[Example] | None = None


def _examples(
    rows: Rows, text: str, label: str, mapping: dict[str, str] | None = None
) -> list[Example]:
    out = []
    for r in rows:
        t = (r[text] or "").replace("\ufeff", "").strip()
        if not t:
            continue
        lab = r[label]
        out.append(Example(t, mapping.get(lab, lab) if mapping else lab))
    return out


def _stratified(examples: list[Example], seed: int = 42) -> tuple[list[Example], list[Example]]:
    from sklearn.model_selection import train_test_split

    labels = [e.label for e in examples]
    tr, te = train_test_split(examples, test_size=0.2, stratify=labels, random_state=seed)
    return list(tr), list(te)


ZH_LABELS = {"0": "negative", "1": "positive"}


def load_splits(data_dir: Path) -> dict[str, Callable[[], Split]]:
    def banking77() -> Split:
        d = data_dir / "banking77"
        return Split(
            "banking77",
            "category",
            _examples(read_csv(d / "train.csv"), "text", "category"),
            _examples(read_csv(d / "test.csv"), "text", "category"),
        )

    def bitext() -> Split:
        d = data_dir / "bitext_support"
        return Split(
            "bitext_support",
            "category",
            _examples(read_csv(d / "train.csv"), "utterance", "intent"),
            _examples(read_csv(d / "test.csv"), "utterance", "intent"),
            _examples(read_csv(d / "dev.csv"), "utterance", "intent"),
        )

    def airline() -> Split:
        rows = read_csv(data_dir / "airline_sentiment" / "Tweets.csv")
        tr, te = _stratified(_examples(rows, "text", "airline_sentiment"))
        return Split("airline_sentiment", "sentiment", tr, te)

    def shopping() -> Split:
        path = data_dir / "zh_online_shopping_10_cats" / "online_shopping_10_cats.csv"
        tr, te = _stratified(_examples(read_csv(path), "review", "label", ZH_LABELS))
        return Split("zh_online_shopping_10_cats", "sentiment", tr, te)

    def waimai() -> Split:
        rows = read_csv(data_dir / "zh_waimai_10k" / "waimai_10k.csv")
        tr, te = _stratified(_examples(rows, "review", "label", ZH_LABELS))
        return Split("zh_waimai_10k", "sentiment", tr, te)

    return {
        "banking77": banking77,
        "bitext_support": bitext,
        "airline_sentiment": airline,
        "zh_online_shopping_10_cats": shopping,
        "zh_waimai_10k": waimai,
    }


def run_plain(split: Split) -> dict[str, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    started = time.perf_counter()
    model = make_pipeline(TfidfVectorizer(), LogisticRegression())
    model.fit([e.text for e in split.train], [e.label for e in split.train])
    pred = model.predict([e.text for e in split.test])
    m = score([e.label for e in split.test], list(pred))
    return {
        "accuracy": m.accuracy,
        "macro_f1": m.macro_f1,
        "seconds": time.perf_counter() - started,
    }


def run_kefu(split: Split, pipelines: Pipelines) -> dict[str, float]:
    started = time.perf_counter()
    result, _, _ = fit(
        split.train, task=split.task, validation=split.validation, pipelines=pipelines
    )
    trained = time.perf_counter() - started
    m = evaluate(result.classifier, split.test, pipelines=pipelines)
    return {
        "accuracy": m.accuracy,
        "macro_f1": m.macro_f1,
        "seconds": time.perf_counter() - started,
        "train_seconds": trained,
        "c": result.c,
        "features": len(result.classifier.word_vocab) + len(result.classifier.char_vocab),
    }


BITEXT_TO_KEFU = {
    "create_account": "account",
    "edit_account": "account",
    "recover_password": "account",
    "registration_problems": "account",
    "switch_account": "account",
    "delete_account": "cancellation",
    "check_cancellation_fee": "cancellation",
    "cancel_order": "cancellation",
    "delivery_options": "delivery",
    "delivery_period": "delivery",
    "change_order": "delivery",
    "track_order": "delivery",
    "change_shipping_address": "delivery",
    "set_up_shipping_address": "delivery",
    "complaint": "complaint",
    "check_invoice": "billing",
    "get_invoice": "billing",
    "check_payment_methods": "billing",
    "payment_issue": "billing",
    "check_refund_policy": "returns",
    "get_refund": "returns",
    "track_refund": "returns",
}


def shipped_models(analyzer: Analyzer, data_dir: Path) -> list[dict[str, object]]:
    """The default models on public data they were not trained on."""
    out: list[dict[str, object]] = []
    pipelines = analyzer.pipelines
    d = data_dir / "bitext_support"
    if d.is_dir():
        rows = [r for r in read_csv(d / "test.csv") if r["intent"] in BITEXT_TO_KEFU]
        examples = _examples(rows, "utterance", "intent", BITEXT_TO_KEFU)
        m = evaluate(analyzer._category, examples, pipelines=pipelines)
        out.append(
            {
                "model": "category",
                "data": "bitext_support test, 22 of 27 intents mapped",
                "n": m.n,
                "accuracy": m.accuracy,
                "macro_f1": m.macro_f1,
            }
        )
    loaders = load_splits(data_dir)
    for name in ("airline_sentiment", "zh_waimai_10k"):
        if not (data_dir / name).is_dir():
            continue
        split = loaders[name]()
        m = evaluate(analyzer._sentiment, split.test, pipelines=pipelines)
        out.append(
            {
                "model": "sentiment",
                "data": f"{name} test split",
                "n": m.n,
                "accuracy": m.accuracy,
                "macro_f1": m.macro_f1,
            }
        )
    return out


def latency(analyzer: Analyzer, data_dir: Path, n: int = 2000) -> dict[str, float]:
    """Single-message latency and batch throughput of the full ``analyze()``."""
    messages: list[str] = []
    b77 = data_dir / "banking77" / "test.csv"
    wm = data_dir / "zh_waimai_10k" / "waimai_10k.csv"
    if b77.exists():
        messages += [r["text"] for r in read_csv(b77)][: n // 2]
    if wm.exists():
        messages += [r["review"] for r in read_csv(wm)][: n // 2]
    if not messages:
        messages = [
            "Where is my order #558201? It has been two weeks.",
            "我的订单还没到，请尽快处理。",
        ]
        messages = (messages * (n // 2))[:n]
    for m in messages[:200]:  # warm up
        analyzer.analyze(m)
    times = []
    for m in messages:
        t0 = time.perf_counter()
        analyzer.analyze(m)
        times.append(time.perf_counter() - t0)
    times.sort()
    t0 = time.perf_counter()
    for i in range(0, len(messages), 256):
        analyzer.analyze_many(messages[i : i + 256])
    batch_seconds = time.perf_counter() - t0
    return {
        "messages": len(messages),
        "median_ms": statistics.median(times) * 1000,
        "p99_ms": times[int(len(times) * 0.99) - 1] * 1000,
        "single_per_second": len(messages) / sum(times),
        "batch_per_second": len(messages) / batch_seconds,
        "mean_chars": statistics.mean(len(m) for m in messages),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--only", default="", help="comma-separated data set names")
    parser.add_argument("--skip-datasets", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()

    import platform

    import sklearn
    import spacy

    print(
        f"python {platform.python_version()}, spaCy {spacy.__version__}, "
        f"scikit-learn {sklearn.__version__}, {platform.processor() or platform.machine()}"
    )
    report: dict[str, object] = {}
    pipelines = Pipelines()
    if not args.skip_datasets:
        loaders = load_splits(args.data_dir)
        wanted = [n for n in args.only.split(",") if n] or list(loaders)
        rows = []
        print(
            f"\n{'data set':28} {'n train':>8} {'n test':>7} | {'plain acc':>9} {'plain F1':>8} | "
            f"{'Kefu acc':>8} {'Kefu F1':>8} | {'Kefu train s':>12}"
        )
        for name in wanted:
            if not (args.data_dir / name).is_dir():
                print(f"{name:28} (missing, skipped)")
                continue
            split = loaders[name]()
            plain = run_plain(split)
            kefu = run_kefu(split, pipelines)
            rows.append(
                {
                    "data": name,
                    "n_train": len(split.train),
                    "n_test": len(split.test),
                    "plain": plain,
                    "kefu": kefu,
                }
            )
            print(
                f"{name:28} {len(split.train):>8} {len(split.test):>7} | {plain['accuracy']:>9.4f} "
                f"{plain['macro_f1']:>8.4f} | {kefu['accuracy']:>8.4f} {kefu['macro_f1']:>8.4f} | "
                f"{kefu['train_seconds']:>12.1f}",
                flush=True,
            )
        report["datasets"] = rows
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        analyzer = Analyzer(models_dir=Path(tmp))
        first_start = time.perf_counter() - t0
        print(f"\nfirst start (build pipelines, train both default models): {first_start:.1f} s")
        t0 = time.perf_counter()
        Analyzer(models_dir=Path(tmp))
        print(f"later start (build pipelines, load models): {time.perf_counter() - t0:.2f} s")
        report["start_seconds"] = first_start
        shipped = shipped_models(analyzer, args.data_dir)
        if shipped:
            print("\nshipped models on public data they never saw:")
            for s in shipped:
                print(
                    f"  {s['model']:9} {s['data']:45} n={s['n']:<5} accuracy {s['accuracy']:.4f}  "
                    f"macro-F1 {s['macro_f1']:.4f}"
                )
        report["shipped"] = shipped
        if not args.skip_latency:
            lat = latency(analyzer, args.data_dir)
            report["latency"] = lat
            print(
                f"\nanalyze(): {lat['messages']} messages (mean {lat['mean_chars']:.0f} chars), "
                f"median {lat['median_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms, "
                f"{lat['single_per_second']:.0f} msg/s one by one, "
                f"{lat['batch_per_second']:.0f} msg/s with analyze_many"
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), "utf-8")


if __name__ == "__main__":
    main()
