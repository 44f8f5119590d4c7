"""Text classification: TF-IDF features, a linear model, calibrated probabilities, an out-of-scope
threshold; training, prediction, saving and loading.

Features (two TF-IDF blocks, each L2-normalised, sublinear term frequency):

* word n-grams over spaCy lemmas (lower case; for Chinese, characters), plus, for the category task,
  unordered pairs of content words ("card&arrive"), which let a linear model see combinations;
* character n-grams inside word boundaries (``char_wb``) over the lower-cased text, which carry
  spelling variants, morphology and Chinese (written without spaces).

Models: the category task uses a linear SVM (one-vs-rest); the sentiment task uses NB-weighted
logistic regression (each one-vs-rest problem scales the features by Naive Bayes log-count ratios,
Wang & Manning 2012) with balanced class weights. Either way the result is one weight matrix, so
prediction is a sparse dot product. The scores become probabilities through a softmax with a
temperature fitted on validation data (temperature scaling keeps the ranking and makes the
confidence mean what it says). C is tuned on validation data, and so is the out-of-scope threshold:
when the training data has an ``other`` label, a prediction whose probability is below the threshold
becomes ``other``.

A trained model is stored as NumPy arrays (``model.npz``, no pickle), its vocabulary
(``vocab.json``) and ``meta.json``; scikit-learn is only needed for training.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from spacy.lang.en.stop_words import STOP_WORDS

from nlp.pipeline import Prepared

OTHER = "other"
MODEL_FORMAT = 1
KEEP_VERSIONS = 5  # model versions kept per task (older ones are deleted; rollback by `current`)
Task = Literal["category", "sentiment"]
TASKS: tuple[Task, ...] = ("category", "sentiment")
ProgressCallback = Callable[[str, float], None]
FloatArray = NDArray[np.float64]

_STOP = frozenset(STOP_WORDS) | {"pls", "plz", "hi", "hello", "hey", "thanks", "thank"}


class ModelFormatError(ValueError):
    """A stored model cannot be read by this version of Kefu."""


@dataclass(frozen=True)
class FeatureConfig:
    """Which n-grams make the features."""

    word_max_n: int = 2
    pairs: bool = True
    char_min_n: int = 2
    char_max_n: int = 5
    min_df: int = 1
    max_pair_tokens: int = 24

    def to_dict(self) -> dict[str, Any]:
        return {
            "word_max_n": self.word_max_n,
            "pairs": self.pairs,
            "char_min_n": self.char_min_n,
            "char_max_n": self.char_max_n,
            "min_df": self.min_df,
            "max_pair_tokens": self.max_pair_tokens,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        return cls(**{k: data[k] for k in cls().to_dict() if k in data})


@dataclass(frozen=True)
class TrainConfig:
    """How a task is trained."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: Literal["svm", "nb-lr"] = "svm"
    c_grid: tuple[float, ...] = (0.5, 1.0, 2.0)
    class_weight: Literal["balanced"] | None = None

    @classmethod
    def for_task(cls, task: str) -> TrainConfig:
        if task == "sentiment":
            return cls(
                features=FeatureConfig(word_max_n=3, pairs=False),
                model="nb-lr",
                c_grid=(0.5, 1.0, 2.0),
                class_weight="balanced",
            )
        return cls()


class WordAnalyzer:
    """Word n-grams (and content-word pairs) of a :class:`Prepared` text."""

    def __init__(self, config: FeatureConfig) -> None:
        self.max_n = config.word_max_n
        self.pairs = config.pairs
        self.max_pair_tokens = config.max_pair_tokens

    def __call__(self, prepared: Prepared) -> list[str]:
        toks = prepared.tokens
        feats = list(toks)
        for n in range(2, self.max_n + 1):
            feats += [" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1)]
        if self.pairs:
            content = sorted(
                {
                    t
                    for t in toks[: self.max_pair_tokens * 4]
                    if len(t) > 1 and t.isalpha() and ord(t[0]) < 0x2E80 and t not in _STOP
                }
            )[: self.max_pair_tokens]
            feats += [a + "&" + b for a, b in itertools.combinations(content, 2)]
        return feats


class CharAnalyzer:
    """Character n-grams within word boundaries (as scikit-learn's ``char_wb``)."""

    def __init__(self, config: FeatureConfig) -> None:
        self.min_n = config.char_min_n
        self.max_n = config.char_max_n

    def __call__(self, prepared: Prepared) -> list[str]:
        feats: list[str] = []
        lo, hi = self.min_n, self.max_n
        for word in prepared.text.split():
            w = " " + word + " "
            wl = len(w)
            for n in range(lo, hi + 1):
                if n > wl:
                    break
                feats += [w[i : i + n] for i in range(wl - n + 1)]
        return feats


def _idf_weights(counts: Counter[int], idf: FloatArray) -> tuple[list[int], FloatArray]:
    idx = list(counts)
    if not idx:
        return idx, np.zeros(0)
    tf = np.fromiter(counts.values(), dtype=np.float64, count=len(idx))
    vals = (1.0 + np.log(tf)) * idf[idx]
    norm = math.sqrt(float(vals @ vals))
    if norm > 0:
        vals /= norm
    return idx, vals


@dataclass
class TextClassifier:
    """A trained classifier: vocabularies, IDF weights, one weight matrix and a temperature."""

    task: str
    labels: tuple[str, ...]
    features: FeatureConfig
    word_vocab: dict[str, int]
    word_idf: FloatArray
    char_vocab: dict[str, int]
    char_idf: FloatArray
    weights: NDArray[np.float32]  # (n_word + n_char, n_labels)
    bias: FloatArray  # (n_labels,)
    temperature: float = 1.0
    threshold: float = 0.0  # below it the prediction is OTHER (0 = never)

    def __post_init__(self) -> None:
        self._word = WordAnalyzer(self.features)
        self._char = CharAnalyzer(self.features)

    @property
    def has_other(self) -> bool:
        return OTHER in self.labels

    # --- features -------------------------------------------------------------------------
    def _sparse_row(self, prepared: Prepared) -> tuple[list[int], FloatArray]:
        wv, cv = self.word_vocab, self.char_vocab
        wc: Counter[int] = Counter()
        for f in self._word(prepared):
            j = wv.get(f)
            if j is not None:
                wc[j] += 1
        cc: Counter[int] = Counter()
        for f in self._char(prepared):
            j = cv.get(f)
            if j is not None:
                cc[j] += 1
        wi, wvals = _idf_weights(wc, self.word_idf)
        ci, cvals = _idf_weights(cc, self.char_idf)
        offset = len(wv)
        return wi + [offset + j for j in ci], np.concatenate([wvals, cvals])

    def transform(self, prepared: Sequence[Prepared]) -> sparse.csr_matrix:
        """The feature matrix of many texts (rows L2-normalised per block)."""
        indptr = [0]
        indices: list[int] = []
        data: list[FloatArray] = []
        for p in prepared:
            idx, vals = self._sparse_row(p)
            indices += idx
            data.append(vals)
            indptr.append(len(indices))
        n_features = len(self.word_vocab) + len(self.char_vocab)
        values = np.concatenate(data) if data else np.zeros(0)
        return sparse.csr_matrix(
            (values, np.asarray(indices, dtype=np.int64), np.asarray(indptr, dtype=np.int64)),
            shape=(len(prepared), n_features),
        )

    # --- prediction -----------------------------------------------------------------------
    def scores(self, prepared: Sequence[Prepared]) -> FloatArray:
        x = self.transform(prepared)
        return np.asarray(x @ self.weights, dtype=np.float64) + self.bias

    def proba(self, prepared: Sequence[Prepared]) -> FloatArray:
        """Calibrated class probabilities, one row per text, columns in ``labels`` order."""
        return softmax(self.scores(prepared) / self.temperature)

    def proba_one(self, prepared: Prepared) -> FloatArray:
        """The probabilities for one text (the fast path used for every chat message)."""
        idx, vals = self._sparse_row(prepared)
        # An element-wise product and a sum (not a BLAS call: no thread start-up per message).
        s = (self.weights[idx] * vals[:, None]).sum(axis=0) + self.bias if idx else self.bias.copy()
        return softmax(np.asarray(s, dtype=np.float64)[None, :] / self.temperature)[0]

    def decide(self, proba: FloatArray) -> tuple[str, float]:
        """The label and its confidence from one row of probabilities (threshold applied)."""
        k = int(np.argmax(proba))
        top = float(proba[k])
        if self.threshold > 0 and top < self.threshold and self.labels[k] != OTHER:
            p_other = float(proba[self.labels.index(OTHER)]) if self.has_other else 0.0
            return OTHER, max(p_other, 1.0 - top)
        return self.labels[k], top

    def predict(self, prepared: Sequence[Prepared]) -> list[str]:
        return [self.decide(row)[0] for row in self.proba(prepared)]

    def unigram_idf(self, token: str) -> float | None:
        """The IDF of a word (lemma) in the training data, for key phrases and summaries."""
        j = self.word_vocab.get(token)
        return None if j is None else float(self.word_idf[j])

    # --- persistence ----------------------------------------------------------------------
    def save(self, directory: Path, meta: dict[str, Any]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            directory / "model.npz",
            weights=self.weights,
            bias=self.bias,
            word_idf=self.word_idf,
            char_idf=self.char_idf,
        )
        vocab = {
            "word": _vocab_list(self.word_vocab),
            "char": _vocab_list(self.char_vocab),
        }
        (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
        full_meta = {
            **meta,
            "format": MODEL_FORMAT,
            "task": self.task,
            "labels": list(self.labels),
            "features": self.features.to_dict(),
            "temperature": self.temperature,
            "threshold": self.threshold,
        }
        (directory / "meta.json").write_text(
            json.dumps(full_meta, ensure_ascii=False, indent=2), "utf-8"
        )

    @classmethod
    def load(cls, directory: Path) -> tuple[TextClassifier, dict[str, Any]]:
        """Load a model saved by :meth:`save`; ``ModelFormatError`` when it cannot be read."""
        try:
            meta = json.loads((directory / "meta.json").read_text("utf-8"))
            if meta.get("format") != MODEL_FORMAT:
                raise ModelFormatError(
                    f"model in {directory} has format {meta.get('format')!r}, "
                    f"this Kefu reads format {MODEL_FORMAT}"
                )
            vocab = json.loads((directory / "vocab.json").read_text("utf-8"))
            with np.load(directory / "model.npz", allow_pickle=False) as arrays:
                weights = arrays["weights"].astype(np.float32, copy=False)
                bias = arrays["bias"].astype(np.float64)
                word_idf = arrays["word_idf"].astype(np.float64)
                char_idf = arrays["char_idf"].astype(np.float64)
            labels = tuple(str(x) for x in meta["labels"])
            clf = cls(
                task=str(meta["task"]),
                labels=labels,
                features=FeatureConfig.from_dict(meta["features"]),
                word_vocab={w: i for i, w in enumerate(vocab["word"])},
                word_idf=word_idf,
                char_vocab={w: i for i, w in enumerate(vocab["char"])},
                char_idf=char_idf,
                weights=weights,
                bias=bias,
                temperature=float(meta["temperature"]),
                threshold=float(meta["threshold"]),
            )
        except ModelFormatError:
            raise
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ModelFormatError(f"model in {directory} cannot be read: {exc}") from exc
        n_features = len(clf.word_vocab) + len(clf.char_vocab)
        if clf.weights.shape != (n_features, len(labels)) or clf.bias.shape != (len(labels),):
            raise ModelFormatError(f"model in {directory} is inconsistent (shapes do not match)")
        return clf, meta


def _vocab_list(vocab: dict[str, int]) -> list[str]:
    out = [""] * len(vocab)
    for term, i in vocab.items():
        out[i] = term
    return out


def softmax(z: FloatArray) -> FloatArray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: FloatArray = e / e.sum(axis=1, keepdims=True)
    return out


# --- training ---------------------------------------------------------------------------------


@dataclass
class _Vectorised:
    word_vocab: dict[str, int]
    word_idf: FloatArray
    char_vocab: dict[str, int]
    char_idf: FloatArray
    x: sparse.csr_matrix


def _classifier(
    task: str,
    labels: tuple[str, ...],
    config: TrainConfig,
    vec: _Vectorised,
    weights: NDArray[np.float32],
    bias: FloatArray,
) -> TextClassifier:
    """A classifier from a fitted vectoriser and linear weights (calibration set afterwards)."""
    return TextClassifier(
        task=task,
        labels=labels,
        features=config.features,
        word_vocab=vec.word_vocab,
        word_idf=vec.word_idf,
        char_vocab=vec.char_vocab,
        char_idf=vec.char_idf,
        weights=weights,
        bias=bias,
    )


def _vectorise_fit(prepared: Sequence[Prepared], config: FeatureConfig) -> _Vectorised:
    from sklearn.feature_extraction.text import TfidfVectorizer

    min_df = config.min_df if len(prepared) >= 5 * config.min_df else 1
    word = TfidfVectorizer(analyzer=WordAnalyzer(config), sublinear_tf=True, min_df=min_df)
    char = TfidfVectorizer(analyzer=CharAnalyzer(config), sublinear_tf=True, min_df=min_df)
    xw = word.fit_transform(prepared)
    xc = char.fit_transform(prepared)
    x = sparse.hstack([xw, xc], format="csr")
    return _Vectorised(
        word_vocab={k: int(v) for k, v in word.vocabulary_.items()},
        word_idf=np.asarray(word.idf_, dtype=np.float64),
        char_vocab={k: int(v) for k, v in char.vocabulary_.items()},
        char_idf=np.asarray(char.idf_, dtype=np.float64),
        x=x,
    )


def _fit_linear(
    x: sparse.csr_matrix, y: NDArray[np.int64], n_labels: int, c: float, config: TrainConfig
) -> tuple[NDArray[np.float32], FloatArray]:
    """One weight matrix (features x labels) and bias for the configured linear model."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if config.model == "svm":
            svm = LinearSVC(C=c, class_weight=config.class_weight, max_iter=5000)
            svm.fit(x, y)
            coef = np.asarray(svm.coef_, dtype=np.float64)
            intercept = np.asarray(svm.intercept_, dtype=np.float64)
            if n_labels == 2:  # scikit-learn keeps one row for two classes
                coef = np.vstack([-coef[0] / 2, coef[0] / 2])
                intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
            return coef.T.astype(np.float32), intercept
        # NB-weighted logistic regression, one-vs-rest.
        binary = (x > 0).astype(np.float64).tocsc()
        columns: list[FloatArray] = []
        biases: list[float] = []
        for k in range(1 if n_labels == 2 else n_labels):
            target = k + 1 if n_labels == 2 else k
            pos = y == target
            p = 1.0 + np.asarray(binary[pos].sum(axis=0)).ravel()
            q = 1.0 + np.asarray(binary[~pos].sum(axis=0)).ravel()
            r = np.log((p / p.sum()) / (q / q.sum()))
            lr = LogisticRegression(
                C=c, class_weight=config.class_weight, solver="liblinear", max_iter=2000
            )
            lr.fit(x.multiply(r).tocsr(), pos.astype(np.int64))
            columns.append(np.asarray(lr.coef_[0], dtype=np.float64) * r)
            biases.append(float(lr.intercept_[0]))
        if n_labels == 2:
            w = columns[0]
            return np.vstack([-w / 2, w / 2]).T.astype(np.float32), np.array(
                [-biases[0] / 2, biases[0] / 2]
            )
        return np.vstack(columns).T.astype(np.float32), np.asarray(biases)


def fit_temperature(scores: FloatArray, y: NDArray[np.int64]) -> float:
    """The temperature that minimises the validation log-loss of ``softmax(scores / T)``."""
    from scipy.optimize import minimize_scalar

    if len(y) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        p = softmax(scores / math.exp(log_t))
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))

    res = minimize_scalar(nll, bounds=(-5.0, 4.0), method="bounded")
    return float(math.exp(res.x))


def tune_threshold(proba: FloatArray, y: NDArray[np.int64], labels: Sequence[str]) -> float:
    """The out-of-scope threshold with the best validation accuracy (0 when there is no
    ``other`` label or no ``other`` row in the validation data)."""
    if OTHER not in labels or len(y) == 0:
        return 0.0
    other = list(labels).index(OTHER)
    if not np.any(y == other):
        return 0.0
    pred = proba.argmax(axis=1)
    top = proba.max(axis=1)
    correct_as_is = pred == y
    correct_as_other = y == other
    tops = np.unique(top)
    # Thresholds halfway between the observed confidences generalise better than the values.
    candidates = np.concatenate([[0.0], (tops[:-1] + tops[1:]) / 2])
    best_t, best_acc = 0.0, -1.0
    for t in candidates:
        # Predictions below the threshold (and not already OTHER) become OTHER.
        becomes_other = (top < t) & (pred != other)
        acc = float(np.mean(np.where(becomes_other, correct_as_other, correct_as_is)))
        if acc > best_acc + 1e-12:
            best_t, best_acc = float(t), acc
    return best_t


@dataclass(frozen=True)
class Metrics:
    """Scores of predictions against true labels."""

    accuracy: float
    macro_f1: float
    in_scope_accuracy: float | None
    out_of_scope_recall: float | None
    per_class: dict[str, dict[str, float]]  # label -> precision, recall, f1, support
    labels: tuple[str, ...]
    confusion: list[list[int]]
    n: int

    def summary(self) -> dict[str, float | None]:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "in_scope_accuracy": self.in_scope_accuracy,
            "out_of_scope_recall": self.out_of_scope_recall,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "n": self.n,
            "per_class": self.per_class,
            "labels": list(self.labels),
            "confusion": self.confusion,
        }


def score(y_true: Sequence[str], y_pred: Sequence[str]) -> Metrics:
    """Accuracy, macro-F1, per-class precision/recall and, where ``other`` rows exist, in-scope
    accuracy and out-of-scope recall."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = tuple(sorted(set(y_true) | set(y_pred)))
    t = np.asarray(y_true, dtype=object)
    p = np.asarray(y_pred, dtype=object)
    n = len(t)
    accuracy = float(np.mean(t == p)) if n else 0.0
    true_labels = sorted(set(y_true))
    prec, rec, f1, support = precision_recall_fscore_support(t, p, labels=labels, zero_division=0)
    per_class = {
        lab: {
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, lab in enumerate(labels)
    }
    macro_f1 = float(np.mean([per_class[lab]["f1"] for lab in true_labels])) if n else 0.0
    in_scope: float | None = None
    oos_recall: float | None = None
    if OTHER in set(y_true):
        mask = t == OTHER
        oos_recall = float(np.mean(p[mask] == OTHER))
        if np.any(~mask):
            in_scope = float(np.mean(p[~mask] == t[~mask]))
    cm = confusion_matrix(t, p, labels=list(labels)) if n else np.zeros((0, 0), dtype=int)
    return Metrics(
        accuracy=accuracy,
        macro_f1=macro_f1,
        in_scope_accuracy=in_scope,
        out_of_scope_recall=oos_recall,
        per_class=per_class,
        labels=labels,
        confusion=[[int(v) for v in row] for row in cm],
        n=n,
    )


@dataclass(frozen=True)
class FitResult:
    classifier: TextClassifier
    validation: Metrics | None
    c: float
    c_scores: dict[float, float]


def fit_classifier(
    task: str,
    train_x: Sequence[Prepared],
    train_y: Sequence[str],
    val_x: Sequence[Prepared],
    val_y: Sequence[str],
    *,
    config: TrainConfig | None = None,
    refit_on_all: bool = True,
    progress: ProgressCallback | None = None,
) -> FitResult:
    """Train a classifier: tune C, the temperature and the threshold on the validation data, then
    (when ``refit_on_all``) fit the final model on training and validation data together."""
    # Load the libraries first: threadpoolctl can only limit the BLAS libraries already loaded.
    import scipy.optimize  # noqa: F401
    import sklearn.linear_model
    import sklearn.svm  # noqa: F401
    from threadpoolctl import threadpool_limits

    # One BLAS thread: the problems are small, and several threads competing with the bot (or with
    # other processes) for two cores made training 30 times slower.
    with threadpool_limits(limits=1):
        return _fit_classifier(task, train_x, train_y, val_x, val_y, config, refit_on_all, progress)


def _fit_classifier(
    task: str,
    train_x: Sequence[Prepared],
    train_y: Sequence[str],
    val_x: Sequence[Prepared],
    val_y: Sequence[str],
    config: TrainConfig | None,
    refit_on_all: bool,
    progress: ProgressCallback | None,
) -> FitResult:
    config = config or TrainConfig.for_task(task)
    report = progress or (lambda _stage, _fraction: None)
    labels = tuple(sorted(set(train_y)))
    if len(labels) < 2:
        raise ValueError("training needs at least two different labels")
    index = {lab: i for i, lab in enumerate(labels)}
    ytr = np.asarray([index[v] for v in train_y], dtype=np.int64)
    known_val = [i for i, v in enumerate(val_y) if v in index]
    vx = [val_x[i] for i in known_val]
    yva = np.asarray([index[val_y[i]] for i in known_val], dtype=np.int64)
    steps = len(config.c_grid) + (2 if refit_on_all and vx else 1)
    done = 0
    report("features", 0.0)
    vec = _vectorise_fit(train_x, config.features)
    best: tuple[float, float, TextClassifier] | None = None
    c_scores: dict[float, float] = {}
    for c in config.c_grid if vx else config.c_grid[len(config.c_grid) // 2 :][:1]:
        done += 1
        report(f"fitting C={c:g}", done / steps)
        clf = _classifier(
            task, labels, config, vec, *_fit_linear(vec.x, ytr, len(labels), c, config)
        )
        if vx:
            pred = clf.scores(vx).argmax(axis=1)
            f1 = score([labels[i] for i in yva], [labels[i] for i in pred]).macro_f1
        else:
            f1 = 0.0
        c_scores[c] = f1
        if best is None or f1 > best[1] + 1e-9:
            best = (c, f1, clf)
    assert best is not None  # noqa: S101 - the grid is never empty
    c, _, clf = best
    validation: Metrics | None = None
    if vx:
        s = clf.scores(vx)
        clf.temperature = fit_temperature(s, yva)
        proba = softmax(s / clf.temperature)
        clf.threshold = tune_threshold(proba, yva, labels)
        validation = score(list(val_y), clf.predict(val_x))
    if refit_on_all and vx:
        done += 1
        report("final model", done / steps)
        all_x = [*train_x, *vx]
        all_y = np.concatenate([ytr, yva])
        vec = _vectorise_fit(all_x, config.features)
        weights, bias = _fit_linear(vec.x, all_y, len(labels), c, config)
        tuned = clf
        clf = _classifier(task, labels, config, vec, weights, bias)
        clf.temperature, clf.threshold = tuned.temperature, tuned.threshold
    report("done", 1.0)
    return FitResult(classifier=clf, validation=validation, c=c, c_scores=c_scores)


# --- storage ----------------------------------------------------------------------------------


class ModelStore:
    """Versioned models under ``models_dir/<task>/<version>/`` with a ``current`` pointer file."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = Path(models_dir)

    def task_dir(self, task: str) -> Path:
        return self.models_dir / task

    def pointer(self, task: str) -> Path:
        return self.task_dir(task) / "current"

    def current_version(self, task: str) -> str | None:
        try:
            version = self.pointer(task).read_text("utf-8").strip()
        except OSError:
            return None
        return version or None

    def stamp(self, task: str) -> tuple[int, int] | None:
        """A cheap fingerprint of the pointer file (changes when a new model is made current)."""
        try:
            st = self.pointer(task).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def save(self, classifier: TextClassifier, meta: dict[str, Any], version: str) -> Path:
        """Write the model into a new version directory and make it current (atomically)."""
        directory = self.task_dir(classifier.task) / version
        tmp = directory.with_name(directory.name + ".partial")
        classifier.save(tmp, {**meta, "version": version})
        os.replace(tmp, directory)
        self.set_current(classifier.task, version)
        self.prune(classifier.task)
        return directory

    def prune(self, task: str, keep: int = KEEP_VERSIONS) -> list[str]:
        """Delete all but the ``keep`` newest versions (never the current one); returns the
        deleted versions."""
        current = self.current_version(task)
        old = [v for v in self.versions(task)[:-keep] if v != current] if keep > 0 else []
        for version in old:
            shutil.rmtree(self.task_dir(task) / version, ignore_errors=True)
        return old

    def set_current(self, task: str, version: str) -> None:
        pointer = self.pointer(task)
        tmp = pointer.with_name(f"current.{os.getpid()}.tmp")
        tmp.write_text(version + "\n", "utf-8")
        os.replace(tmp, pointer)

    def load(self, task: str, version: str | None = None) -> tuple[TextClassifier, dict[str, Any]]:
        version = version or self.current_version(task)
        if version is None:
            raise ModelFormatError(f"there is no {task} model in {self.task_dir(task)}")
        return TextClassifier.load(self.task_dir(task) / version)

    def versions(self, task: str) -> list[str]:
        d = self.task_dir(task)
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if p.is_dir() and (p / "meta.json").exists())
