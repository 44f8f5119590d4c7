"""The classifier: features, save/load round trip, calibration and the out-of-scope threshold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nlp.classify import (
    OTHER,
    FeatureConfig,
    ModelFormatError,
    ModelStore,
    TextClassifier,
    _vectorise_fit,
    fit_classifier,
    fit_temperature,
    score,
    softmax,
    tune_threshold,
)
from nlp.pipeline import Pipelines, Prepared
from nlp.training import default_examples, split_examples

TEXTS = [
    "Where is my order? It has been two weeks",
    "I forgot my password",
    "我的订单还没到，怎么办？",
    "refund refund refund please",
    "",
    "a",
]


@pytest.fixture(scope="module")
def small_fit(pipelines: Pipelines) -> tuple[TextClassifier, list[Prepared]]:
    examples = default_examples("category")
    train, val = split_examples(examples, 0.2, seed=1)
    px = pipelines.prepare([e.text for e in train])
    pv = pipelines.prepare([e.text for e in val])
    result = fit_classifier(
        "category", px, [e.label for e in train], pv, [e.label for e in val], refit_on_all=False
    )
    return result.classifier, pv


def test_fast_features_match_scikit_learn(pipelines: Pipelines) -> None:
    prepared = pipelines.prepare(TEXTS)
    config = FeatureConfig()
    vec = _vectorise_fit(prepared, config)
    n = vec.x.shape[1]
    clf = TextClassifier(
        task="category",
        labels=("a", "b"),
        features=config,
        word_vocab=vec.word_vocab,
        word_idf=vec.word_idf,
        char_vocab=vec.char_vocab,
        char_idf=vec.char_idf,
        weights=np.zeros((n, 2), dtype=np.float32),
        bias=np.zeros(2),
    )
    assert abs(vec.x - clf.transform(prepared)).max() < 1e-12


def test_proba_one_equals_batch_proba(small_fit: tuple[TextClassifier, list[Prepared]]) -> None:
    clf, prepared = small_fit
    batch = clf.proba(prepared[:20])
    one = np.vstack([clf.proba_one(p) for p in prepared[:20]])
    np.testing.assert_allclose(batch, one, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(batch.sum(axis=1), 1.0)


def test_save_and_load_round_trip(
    small_fit: tuple[TextClassifier, list[Prepared]], tmp_path: Path
) -> None:
    clf, prepared = small_fit
    store = ModelStore(tmp_path)
    store.save(clf, {"source": "test"}, "v1")
    assert store.current_version("category") == "v1"
    loaded, meta = store.load("category")
    assert meta["version"] == "v1"
    assert meta["source"] == "test"
    assert meta["labels"] == list(clf.labels)
    assert loaded.labels == clf.labels
    assert loaded.threshold == clf.threshold
    assert loaded.temperature == clf.temperature
    np.testing.assert_allclose(loaded.proba(prepared), clf.proba(prepared), rtol=1e-6)
    assert loaded.predict(prepared) == clf.predict(prepared)
    assert not list(tmp_path.rglob("*.pkl"))  # no pickle: arrays and JSON only


def test_old_versions_are_pruned_but_never_the_current_one(
    small_fit: tuple[TextClassifier, list[Prepared]], tmp_path: Path
) -> None:
    clf, _ = small_fit
    store = ModelStore(tmp_path)
    for i in range(7):
        store.save(clf, {}, f"v{i}")
    assert store.versions("category") == ["v2", "v3", "v4", "v5", "v6"]
    store.set_current("category", "v2")
    assert store.prune("category", keep=2) == ["v3", "v4"]
    assert store.versions("category") == ["v2", "v5", "v6"]


def test_a_model_of_another_format_is_refused(
    small_fit: tuple[TextClassifier, list[Prepared]], tmp_path: Path
) -> None:
    clf, _ = small_fit
    path = ModelStore(tmp_path).save(clf, {}, "v1")
    meta = json.loads((path / "meta.json").read_text("utf-8"))
    meta["format"] = 999
    (path / "meta.json").write_text(json.dumps(meta), "utf-8")
    with pytest.raises(ModelFormatError, match="format"):
        ModelStore(tmp_path).load("category")


def test_a_damaged_model_is_refused(
    small_fit: tuple[TextClassifier, list[Prepared]], tmp_path: Path
) -> None:
    clf, _ = small_fit
    path = ModelStore(tmp_path).save(clf, {}, "v1")
    (path / "model.npz").write_bytes(b"not a zip file")
    with pytest.raises(ModelFormatError, match="cannot be read"):
        ModelStore(tmp_path).load("category")


def test_no_model_is_a_model_format_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="no category model"):
        ModelStore(tmp_path).load("category")


def test_threshold_is_tuned_to_separate_uncertain_out_of_scope_rows() -> None:
    labels = ("billing", "delivery", OTHER)
    # Confident in-scope rows, and out-of-scope rows the model wrongly gives to "billing" with
    # low confidence.
    proba = np.array(
        [
            [0.9, 0.05, 0.05],
            [0.05, 0.9, 0.05],
            [0.8, 0.1, 0.1],
            [0.45, 0.3, 0.25],
            [0.4, 0.35, 0.25],
            [0.1, 0.1, 0.8],
        ]
    )
    y = np.array([0, 1, 0, 2, 2, 2])
    t = tune_threshold(proba, y, labels)
    assert 0.45 < t < 0.8
    assert tune_threshold(proba, y, ("billing", "delivery", "returns")) == 0.0
    assert tune_threshold(proba, np.array([0, 1, 0, 1, 0, 1]), labels) == 0.0


def test_below_the_threshold_the_category_is_other(
    small_fit: tuple[TextClassifier, list[Prepared]],
) -> None:
    clf, _ = small_fit
    original = clf.threshold
    try:
        clf.threshold = 0.6
        k = clf.labels.index("billing")
        proba = np.full(len(clf.labels), 0.5 / (len(clf.labels) - 1))
        proba[k] = 0.5
        label, confidence = clf.decide(proba)
        assert label == OTHER
        assert confidence == pytest.approx(0.5)
        proba[k] = 0.7
        proba[[i for i in range(len(proba)) if i != k]] = 0.3 / (len(proba) - 1)
        assert clf.decide(proba) == ("billing", pytest.approx(0.7))
    finally:
        clf.threshold = original


def test_default_model_metadata(models_dir: Path) -> None:
    clf, meta = ModelStore(models_dir).load("category")
    assert OTHER in clf.labels
    assert 0.0 <= clf.threshold < 1.0  # tuned on validation data (0 when rejecting never helps)
    assert meta["threshold"] == clf.threshold
    assert meta["metrics"]["out_of_scope_recall"] is not None
    assert meta["metrics"]["accuracy"] > 0.6
    assert meta["source"] == "default"
    assert len(meta["data_sha256"]) == 64
    assert meta["sklearn_version"]
    assert meta["created"].endswith("+00:00")


def test_temperature_scaling_reduces_overconfidence() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=300)
    scores = rng.normal(size=(300, 3))
    scores[np.arange(300), y] += 1.0
    scores *= 10  # wildly overconfident
    t = fit_temperature(scores, y)
    assert t > 3

    def nll(temp: float) -> float:
        p = softmax(scores / temp)
        return float(-np.mean(np.log(p[np.arange(300), y])))

    assert nll(t) < nll(1.0)


def test_score_reports_in_scope_accuracy_and_out_of_scope_recall() -> None:
    truth = ["billing", "billing", "delivery", OTHER, OTHER]
    pred = ["billing", "delivery", "delivery", OTHER, "billing"]
    m = score(truth, pred)
    assert m.accuracy == pytest.approx(3 / 5)
    assert m.in_scope_accuracy == pytest.approx(2 / 3)
    assert m.out_of_scope_recall == pytest.approx(1 / 2)
    assert m.per_class["billing"]["precision"] == pytest.approx(1 / 2)
    assert m.per_class["billing"]["recall"] == pytest.approx(1 / 2)
    no_other = score(["a", "b"], ["a", "a"])
    assert no_other.in_scope_accuracy is None
    assert no_other.out_of_scope_recall is None
    assert no_other.macro_f1 == pytest.approx((2 / 3 + 0) / 2)
