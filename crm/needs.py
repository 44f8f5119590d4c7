"""Need prediction: who is likely to need help soon, why, and how many to staff for.

Training
    From the database (:func:`history_dataset` then :func:`train`): features at several past
    cutoffs (``crm/features.py``), label = "opened a ticket in the 30 days after the cutoff".
    From a flat table (:func:`train_table`): one row per customer and a yes/no label column (such
    as churn).

    Three model families are compared by cross-validated ROC AUC on the training part: a decision
    tree (as in the design), logistic regression on an additive encoding (standardised value,
    signed log and cubic B-splines of every continuous feature, one-hot categories, missing
    indicators) and histogram gradient boosting. The best is calibrated (Platt scaling with
    5-fold out-of-fold predictions; isotonic on a 15% calibration slice for more than 20,000
    rows) and evaluated once on a stratified 20% hold-out (seed 42) that took no part in any
    choice. The model that is saved is exactly the one evaluated. Large histories are sampled
    (seeded) to keep training under a minute: the choice uses 20,000 rows and 3 folds, the final
    fit at most 150,000 rows.

Registry
    ``<models_dir>/needs/<version>/model.joblib`` and ``meta.json`` (metrics, features, data hash,
    date, library versions); ``<models_dir>/needs/current`` names the version in use.

Reasons
    For each scored customer and each input feature, the feature is set to its typical value
    (training median; most frequent category) and the probability recomputed; the drop is the
    feature's push on this customer's score. This is one cheap, model-agnostic method (for a linear
    model on raw features it is exactly coefficient x (value - median)); it ignores interactions
    between features, so read it as "what stands out", not as causes.

Staffing forecast
    From each customer's 30-day probability ``p``, the probability of needing help within ``d``
    days is ``1 - (1 - p) ** (d / 30)`` (a constant daily hazard within the 30 days); the number of
    customers is Poisson-binomial (independent customers; the binomial when all ``p`` are equal),
    summarised by :func:`crm.poisson_binomial.poisson_binomial_interval`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import SplineTransformer
from sklearn.tree import DecisionTreeClassifier
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm import features
from crm.errors import KefuError
from crm.features import FloatArray, HistoryDataset, TableSchema
from crm.models import ACTIVE_STATUSES, Customer, Ticket
from crm.poisson_binomial import poisson_binomial_interval

SEED = 42
HOLDOUT = 0.2
HORIZON_DAYS = 30
#: Above this many training rows: 3 folds on a sample for the choice, isotonic calibration.
LARGE = 20_000
SELECTION_SAMPLE = 20_000
#: The chosen model is fitted on at most this many rows (a seeded random sample beyond it).
MAX_FIT_ROWS = 150_000
MAX_KNOTS = 10
MIN_CLASS = 10
FAMILIES = ("tree", "logistic", "hgb")

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stages ``features``, ``select``, ``fit``."""


class NeedsError(KefuError):
    code = "needs_error"


class NoNeedsModel(NeedsError):
    code = "needs_no_model"


# --------------------------------------------------------------------------------------
# Encoding for the linear model (and the tree)
# --------------------------------------------------------------------------------------


class TabularEncoder(TransformerMixin, BaseEstimator):
    """Numeric matrix -> additive features: numbers and categories in, a wide matrix out.

    ``kinds[j]`` is 0 for a numeric column, else the number of category codes of column ``j``.
    Numeric columns: missing values become the training median plus an "is missing" column;
    then the standardised value, and for continuous columns (at least 8 distinct values) also a
    standardised signed log and a cubic B-spline basis on quantile knots (``expand=True``).
    Categorical columns: one-hot (codes outside the known range count as the last code).
    """

    def __init__(self, kinds: tuple[int, ...] = (), expand: bool = True) -> None:
        self.kinds = kinds
        self.expand = expand

    def fit(self, X: FloatArray, y: object = None) -> TabularEncoder:
        X = np.asarray(X, dtype=np.float64)
        kinds = self.kinds or (0,) * X.shape[1]
        self.medians_: dict[int, float] = {}
        self.missing_: dict[int, bool] = {}
        self.moments_: dict[int, tuple[float, float, float, float]] = {}
        self.splines_: dict[int, SplineTransformer] = {}
        for j, kind in enumerate(kinds):
            if kind:
                continue
            col = X[:, j]
            present = col[~np.isnan(col)]
            median = float(np.median(present)) if present.size else 0.0
            self.medians_[j] = median
            self.missing_[j] = bool(present.size < col.size)
            filled = np.where(np.isnan(col), median, col)
            logged = np.sign(filled) * np.log1p(np.abs(filled))
            self.moments_[j] = (
                float(filled.mean()),
                float(filled.std()) or 1.0,
                float(logged.mean()),
                float(logged.std()) or 1.0,
            )
            if self.expand and np.unique(present).size >= 8:
                knots = np.unique(np.quantile(filled, np.linspace(0.0, 1.0, MAX_KNOTS)))
                if knots.size >= 3:
                    spline = SplineTransformer(degree=3, knots=knots.reshape(-1, 1))
                    self.splines_[j] = spline.fit(filled.reshape(-1, 1))
        self.kinds_ = kinds
        return self

    def transform(self, X: FloatArray) -> FloatArray:
        X = np.asarray(X, dtype=np.float64)
        blocks: list[FloatArray] = []
        for j, kind in enumerate(self.kinds_):
            col = X[:, j]
            if kind:
                codes = np.nan_to_num(col, nan=kind - 1).astype(np.int64)
                codes = np.clip(codes, 0, kind - 1)
                blocks.append(np.eye(kind, dtype=np.float64)[codes])
                continue
            missing = np.isnan(col)
            filled = np.where(missing, self.medians_[j], col)
            mean, std, log_mean, log_std = self.moments_[j]
            parts = [((filled - mean) / std)[:, None]]
            if self.missing_[j]:
                parts.append(missing.astype(np.float64)[:, None])
            spline = self.splines_.get(j)
            if spline is not None:
                logged = np.sign(filled) * np.log1p(np.abs(filled))
                parts.append(((logged - log_mean) / log_std)[:, None])
                parts.append(np.asarray(spline.transform(filled.reshape(-1, 1))))
            blocks.extend(parts)
        return np.hstack(blocks) if blocks else np.zeros((X.shape[0], 0))


# --------------------------------------------------------------------------------------
# Candidates
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    family: str
    params: dict[str, Any]

    @property
    def label(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.family}({inner})"

    def build(self, kinds: tuple[int, ...]) -> ClassifierMixin:
        if self.family == "tree":
            return Pipeline(
                [
                    ("encode", TabularEncoder(kinds, expand=False)),
                    ("model", DecisionTreeClassifier(random_state=SEED, **self.params)),
                ]
            )
        if self.family == "logistic":
            return Pipeline(
                [
                    ("encode", TabularEncoder(kinds)),
                    ("model", LogisticRegression(max_iter=3000, **self.params)),
                ]
            )
        if self.family == "hgb":
            mask = [k > 0 for k in kinds]
            return HistGradientBoostingClassifier(
                categorical_features=mask if any(mask) else None,
                max_iter=300,
                early_stopping=True,
                n_iter_no_change=20,
                validation_fraction=0.1,
                random_state=SEED,
                **self.params,
            )
        raise ValueError(f"unknown model family {self.family!r}")


def candidates() -> list[Candidate]:
    grid = [Candidate("tree", {"max_depth": d, "min_samples_leaf": 20}) for d in (4, 6, 8)]
    grid += [Candidate("logistic", {"C": c}) for c in (0.01, 0.03, 0.1, 0.3, 1.0)]
    grid += [
        Candidate(
            "hgb",
            {
                "learning_rate": 0.05,
                "max_leaf_nodes": 8,
                "min_samples_leaf": 40,
                "l2_regularization": 1.0,
            },
        ),
        Candidate("hgb", {"learning_rate": 0.1, "max_leaf_nodes": 16, "min_samples_leaf": 20}),
    ]
    return grid


@dataclass(frozen=True, slots=True)
class Metrics:
    auc: float
    pr_auc: float
    accuracy: float
    brier: float

    @classmethod
    def of(cls, y: NDArray[np.int64], p: FloatArray) -> Metrics:
        return cls(
            auc=float(roc_auc_score(y, p)),
            pr_auc=float(average_precision_score(y, p)),
            accuracy=float(accuracy_score(y, (p >= 0.5).astype(np.int64))),
            brier=float(brier_score_loss(y, p)),
        )


@dataclass(frozen=True, slots=True)
class Reason:
    """A feature that pushes a customer's score up: its value, the typical value, the push."""

    feature: str
    value: str
    typical: str
    effect: float  # probability points gained against the typical value (0..1)


@dataclass
class NeedsModel:
    """A trained, calibrated need model and what it takes to use and explain it."""

    estimator: Any
    names: list[str]
    kinds: tuple[int, ...]
    reference: FloatArray
    source: str  # "database" or "table"
    label: str
    horizon_days: int | None
    categories: list[str] = field(default_factory=list)
    schema: TableSchema | None = None
    version: str = ""

    def predict(self, X: FloatArray) -> FloatArray:
        if X.shape[0] == 0:
            return np.zeros(0)
        return np.asarray(self.estimator.predict_proba(X)[:, 1], dtype=np.float64)

    def describe(self, j: int, value: float) -> str:
        if self.schema is not None:
            return self.schema.describe(j, value)
        name = self.names[j]
        if math.isnan(value):
            return "none"
        if name == "negative_share" or name.startswith(features.CATEGORY_PREFIX):
            return f"{value:.0%}"
        if name == "mean_rating":
            return f"{value:.1f}"
        if name.startswith("monetary") or name == "mean_order_value":
            return f"{value:,.2f}"
        return f"{value:.0f}"

    def explain(
        self, X: FloatArray, *, top: int = 3, min_effect: float = 0.005
    ) -> list[list[Reason]]:
        """For each row, the ``top`` features that push its probability up the most."""
        n, d = X.shape
        if n == 0:
            return []
        base = self.predict(X)
        variants = np.repeat(X, d, axis=0)
        rows = np.arange(n * d)
        variants[rows, np.tile(np.arange(d), n)] = np.tile(self.reference, n)
        effects = (base[:, None] - self.predict(variants).reshape(n, d)).clip(min=0.0)
        reasons: list[list[Reason]] = []
        for i in range(n):
            order = np.argsort(-effects[i], kind="stable")[:top]
            reasons.append(
                [
                    Reason(
                        feature=self.names[j],
                        value=self.describe(j, float(X[i, j])),
                        typical=self.describe(j, float(self.reference[j])),
                        effect=float(effects[i, j]),
                    )
                    for j in order
                    if effects[i, j] >= min_effect
                ]
            )
        return reasons


def _reference(X: FloatArray, kinds: Sequence[int]) -> FloatArray:
    ref = np.zeros(X.shape[1])
    for j, kind in enumerate(kinds):
        col = X[:, j]
        present = col[~np.isnan(col)]
        if present.size == 0:
            ref[j] = np.nan
        elif kind:
            values, counts = np.unique(present, return_counts=True)
            ref[j] = values[np.argmax(counts)]
        else:
            ref[j] = float(np.median(present))
    return ref


# --------------------------------------------------------------------------------------
# Fitting, choosing, calibrating
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fitted:
    estimator: Any
    chosen: Candidate
    metrics: Metrics
    scores: list[dict[str, Any]]  # every candidate's cross-validated ROC AUC
    train_rows: int
    holdout_rows: int
    seconds: float


def _split(
    y: NDArray[np.int64], groups: NDArray[np.int64] | None
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Stratified 20% hold-out (seed 42); with groups, whole customers go to one side."""
    index = np.arange(y.size)
    if groups is None:
        train, test = train_test_split(index, test_size=HOLDOUT, stratify=y, random_state=SEED)
        return np.sort(train), np.sort(test)
    unique, inverse = np.unique(groups, return_inverse=True)
    ever = np.zeros(unique.size, dtype=np.int64)
    np.maximum.at(ever, inverse, y)
    train_g, _ = train_test_split(
        np.arange(unique.size), test_size=HOLDOUT, stratify=ever, random_state=SEED
    )
    in_train = np.isin(inverse, train_g)
    return index[in_train], index[~in_train]


def _folds(
    X: FloatArray, y: NDArray[np.int64], groups: NDArray[np.int64] | None, n_splits: int
) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    if groups is None:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=SEED)
        return list(splitter.split(X, y))
    grouped = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=SEED)
    return list(grouped.split(X, y, groups))


def _quiet_fit(model: Any, X: FloatArray, y: NDArray[np.int64]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def fit_and_select(
    X: FloatArray,
    y: NDArray[np.int64],
    kinds: tuple[int, ...],
    *,
    groups: NDArray[np.int64] | None = None,
    grid: Sequence[Candidate] | None = None,
    progress: Progress | None = None,
) -> Fitted:
    """Choose by cross-validation on the training part, calibrate, measure on the hold-out."""
    started = time.perf_counter()
    positives = int(y.sum())
    if positives < MIN_CLASS or y.size - positives < MIN_CLASS:
        raise NeedsError(
            f"not enough examples to learn from: {positives} customers needed help and "
            f"{y.size - positives} did not (at least {MIN_CLASS} of each are needed)"
        )
    grid = list(grid or candidates())
    train, test = _split(y, groups)
    X_train, y_train = X[train], y[train]
    g_train = groups[train] if groups is not None else None
    rng = np.random.default_rng(SEED)
    large = train.size > LARGE
    pick = np.sort(rng.choice(train.size, SELECTION_SAMPLE, replace=False)) if large else None
    X_sel = X_train[pick] if pick is not None else X_train
    y_sel = y_train[pick] if pick is not None else y_train
    g_sel = g_train[pick] if (g_train is not None and pick is not None) else g_train
    folds = _folds(X_sel, y_sel, g_sel, 3 if large else 5)
    scores: list[dict[str, Any]] = []
    total = len(grid) * len(folds)
    for c_index, candidate in enumerate(grid):
        aucs = []
        for f_index, (fit_idx, val_idx) in enumerate(folds):
            if progress is not None:
                progress("select", c_index * len(folds) + f_index, total)
            model = _quiet_fit(candidate.build(kinds), X_sel[fit_idx], y_sel[fit_idx])
            p = model.predict_proba(X_sel[val_idx])[:, 1]
            aucs.append(float(roc_auc_score(y_sel[val_idx], p)))
        scores.append(
            {"model": candidate.label, "family": candidate.family, "cv_auc": float(np.mean(aucs))}
        )
    if progress is not None:
        progress("select", total, total)
    best = max(range(len(grid)), key=lambda i: scores[i]["cv_auc"])
    chosen = grid[best]
    if progress is not None:
        progress("fit", 0, 1)
    if large:
        fit_idx, cal_idx = train_test_split(
            np.arange(train.size), test_size=0.15, stratify=y_train, random_state=SEED
        )
        if fit_idx.size > MAX_FIT_ROWS:
            fit_idx = np.sort(rng.choice(fit_idx, MAX_FIT_ROWS, replace=False))
        base = _quiet_fit(chosen.build(kinds), X_train[fit_idx], y_train[fit_idx])
        estimator = CalibratedClassifierCV(FrozenEstimator(base), method="isotonic")
        estimator.fit(X_train[cal_idx], y_train[cal_idx])
    else:
        estimator = CalibratedClassifierCV(
            chosen.build(kinds), method="sigmoid", cv=5, ensemble=False
        )
        _quiet_fit(estimator, X_train, y_train)
    if progress is not None:
        progress("fit", 1, 1)
    p_test = estimator.predict_proba(X[test])[:, 1]
    return Fitted(
        estimator=estimator,
        chosen=chosen,
        metrics=Metrics.of(y[test], p_test),
        scores=scores,
        train_rows=int(train.size),
        holdout_rows=int(test.size),
        seconds=time.perf_counter() - started,
    )


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrainResult:
    version: str
    path: Path
    model: str
    metrics: Metrics
    candidates: list[dict[str, Any]]
    rows: int
    positives: int
    holdout_rows: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self.metrics),
            "model": self.model,
            "version": self.version,
            "rows": self.rows,
            "positives": self.positives,
            "holdout_rows": self.holdout_rows,
            "seconds": round(self.seconds, 2),
            "candidates": self.candidates,
        }


def registry(models_dir: Path) -> Path:
    return models_dir / "needs"


def _new_version(root: Path, now: datetime) -> str:
    base = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    version, n = base, 1
    while (root / version).exists():
        n += 1
        version = f"{base}-{n}"
    return version


def save(model: NeedsModel, meta: dict[str, Any], *, models_dir: Path, now: datetime) -> Path:
    """Write a new version and point ``current`` at it (atomically)."""
    root = registry(models_dir)
    root.mkdir(parents=True, exist_ok=True)
    version = _new_version(root, now)
    folder = root / version
    folder.mkdir()
    model.version = version
    joblib.dump(model, folder / "model.joblib")
    meta = {
        "version": version,
        "created_at": now.astimezone(UTC).isoformat(),
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        **meta,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    pointer = root / "current.tmp"
    pointer.write_text(version + "\n", encoding="utf-8")
    os.replace(pointer, root / "current")
    return folder


def current_version(models_dir: Path) -> str | None:
    pointer = registry(models_dir) / "current"
    if not pointer.exists():
        return None
    return pointer.read_text(encoding="utf-8").strip() or None


def load_current(models_dir: Path) -> NeedsModel | None:
    """The model in use, or None when none was trained yet. Our own files only (joblib)."""
    version = current_version(models_dir)
    if version is None:
        return None
    path = registry(models_dir) / version / "model.joblib"
    if not path.exists():
        return None
    model = joblib.load(path)
    if not isinstance(model, NeedsModel):
        raise NeedsError(f"{path} is not a need model")
    return model


def load_meta(models_dir: Path, version: str | None = None) -> dict[str, Any] | None:
    version = version or current_version(models_dir)
    if version is None:
        return None
    path = registry(models_dir) / version / "meta.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _meta(
    fitted: Fitted, names: list[str], *, y: NDArray[np.int64], data_hash: str
) -> dict[str, Any]:
    return {
        "model": fitted.chosen.label,
        "family": fitted.chosen.family,
        "params": fitted.chosen.params,
        "metrics": asdict(fitted.metrics),
        "candidates": fitted.scores,
        "features": names,
        "rows": int(y.size),
        "positives": int(y.sum()),
        "train_rows": fitted.train_rows,
        "holdout_rows": fitted.holdout_rows,
        "data_sha256": data_hash,
        "seconds": round(fitted.seconds, 2),
    }


def _result(folder: Path, fitted: Fitted, y: NDArray[np.int64]) -> TrainResult:
    return TrainResult(
        version=folder.name,
        path=folder,
        model=fitted.chosen.label,
        metrics=fitted.metrics,
        candidates=fitted.scores,
        rows=int(y.size),
        positives=int(y.sum()),
        holdout_rows=fitted.holdout_rows,
        seconds=fitted.seconds,
    )


def train_table(
    path: Path,
    *,
    label_column: str,
    id_column: str | None,
    models_dir: Path,
    now: datetime,
    progress: Progress | None = None,
    grid: Sequence[Candidate] | None = None,
) -> TrainResult:
    """Learn from a flat customer table (one row per customer, a yes/no label column)."""
    try:
        table = features.read_table(path, label_column=label_column, id_column=id_column)
    except features.TableError as exc:
        raise NeedsError(str(exc)) from exc
    schema = features.infer_schema(table.columns)
    if not schema.columns:
        raise NeedsError("the table has no usable feature columns")
    records = [
        {name: table.columns[name][i] for name in schema.names} for i in range(len(table.ids))
    ]
    X = schema.encode(records)
    y = table.y
    fitted = fit_and_select(X, y, schema.kinds, grid=grid, progress=progress)
    model = NeedsModel(
        estimator=fitted.estimator,
        names=schema.names,
        kinds=schema.kinds,
        reference=_reference(X, schema.kinds),
        source="table",
        label=label_column,
        horizon_days=None,
        schema=schema,
    )
    meta = _meta(
        fitted,
        schema.names,
        y=y,
        data_hash=hashlib.sha256(path.read_bytes()).hexdigest(),
    )
    meta |= {
        "source": "table",
        "file": path.name,
        "label": label_column,
        "id_column": id_column,
        "dropped_columns": list(schema.dropped),
        "skipped_rows": table.skipped_rows,
        "horizon_days": None,
    }
    folder = save(model, meta, models_dir=models_dir, now=now)
    return _result(folder, fitted, y)


async def history_dataset(
    session: AsyncSession, *, now: datetime, cutoffs: int = 4, progress: Progress | None = None
) -> HistoryDataset:
    """Training rows from the database (see :func:`crm.features.history_dataset`)."""
    return await features.history_dataset(
        session, now=now, cutoffs=cutoffs, horizon_days=HORIZON_DAYS, progress=progress
    )


def train(
    data: HistoryDataset,
    *,
    models_dir: Path,
    now: datetime,
    progress: Progress | None = None,
    grid: Sequence[Candidate] | None = None,
) -> TrainResult:
    """Learn from the database history (CPU work: call it off the event loop)."""
    if data.y.size == 0:
        raise NeedsError(
            "not enough history: training needs customers created at least 60 days ago "
            "(30 days of history and 30 days to see who opened a ticket)"
        )
    kinds = (0,) * len(data.names)
    fitted = fit_and_select(
        data.X, data.y, kinds, groups=data.customer_ids, grid=grid, progress=progress
    )
    model = NeedsModel(
        estimator=fitted.estimator,
        names=data.names,
        kinds=kinds,
        reference=_reference(data.X, kinds),
        source="database",
        label=f"ticket within {data.horizon_days} days",
        horizon_days=data.horizon_days,
        categories=data.categories,
    )
    digest = hashlib.sha256(np.ascontiguousarray(data.X).tobytes() + data.y.tobytes())
    meta = _meta(fitted, data.names, y=data.y, data_hash=digest.hexdigest())
    meta |= {
        "source": "database",
        "label": model.label,
        "horizon_days": data.horizon_days,
        "cutoffs": [c.isoformat() for c in data.cutoffs],
        "customers": int(np.unique(data.customer_ids).size),
    }
    folder = save(model, meta, models_dir=models_dir, now=now)
    return _result(folder, fitted, data.y)


# --------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scores:
    customer_ids: NDArray[np.int64]
    X: FloatArray
    probabilities: FloatArray


async def score(
    session: AsyncSession,
    *,
    model: NeedsModel,
    now: datetime,
    customer_ids: Sequence[int] | None = None,
) -> Scores:
    """Every customer's probability of needing help (or of the table model's label)."""
    if model.source == "database":
        matrix = await features.compute(
            session, cutoff=now, categories=model.categories, customer_ids=customer_ids
        )
        ids, X = matrix.customer_ids, matrix.X
    else:
        if model.schema is None:
            raise NeedsError("the table model has no column description")
        query = select(Customer.id, Customer.attributes).where(Customer.external_id.is_not(None))
        if customer_ids is not None:
            query = query.where(Customer.id.in_(list(customer_ids)))
        rows = (await session.execute(query.order_by(Customer.id))).all()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        records = [dict(r[1] or {}) for r in rows]
        names = model.schema.names
        present = sum(1 for rec in records for n in names if n in rec)
        if records and present < 0.5 * len(records) * len(names):
            raise NeedsError(
                "the current model was trained from a table whose columns your customer records "
                "do not have: import that table as customers, or train from the database"
            )
        X = model.schema.encode(records)
    probabilities = await _predict_off_loop(model, X)
    return Scores(ids, X, probabilities)


async def _predict_off_loop(model: NeedsModel, X: FloatArray) -> FloatArray:
    import asyncio

    if X.shape[0] <= 1000:
        return model.predict(X)
    return await asyncio.to_thread(model.predict, X)


@dataclass(frozen=True, slots=True)
class AtRisk:
    customer_id: int
    external_id: str | None
    name: str
    probability: float
    reasons: list[Reason]


async def _active_customers(session: AsyncSession) -> set[int]:
    result = await session.execute(
        select(Ticket.customer_id).where(Ticket.status.in_(ACTIVE_STATUSES)).distinct()
    )
    return {int(r[0]) for r in result}


async def at_risk(
    session: AsyncSession,
    *,
    model: NeedsModel,
    now: datetime,
    top: int = 10,
    include_active: bool = False,
    scores: Scores | None = None,
) -> list[AtRisk]:
    """The ``top`` customers most likely to need help, each with what pushes their score up.

    Customers with a ticket in progress are left out unless ``include_active``: they are
    already talking to support. Pass ``scores`` (from :func:`score`) to avoid scoring twice.
    """
    if scores is None:
        scores = await score(session, model=model, now=now)
    keep = np.ones(scores.customer_ids.size, dtype=bool)
    if not include_active:
        active = await _active_customers(session)
        keep = ~np.isin(scores.customer_ids, np.array(sorted(active), dtype=np.int64))
    candidates_idx = np.flatnonzero(keep)
    order = candidates_idx[np.argsort(-scores.probabilities[candidates_idx], kind="stable")][
        : max(top, 0)
    ]
    if order.size == 0:
        return []
    reasons = model.explain(scores.X[order])
    ids = [int(i) for i in scores.customer_ids[order]]
    rows = await session.execute(select(Customer).where(Customer.id.in_(ids)))
    by_id = {c.id: c for c in rows.scalars()}
    return [
        AtRisk(
            customer_id=cid,
            external_id=by_id[cid].external_id,
            name=by_id[cid].display_name,
            probability=float(scores.probabilities[i]),
            reasons=reasons[k],
        )
        for k, (i, cid) in enumerate(zip(order, ids, strict=True))
    ]


@dataclass(frozen=True, slots=True)
class Need:
    """One customer's predicted need (for the staff card)."""

    probability: float
    reasons: list[Reason]
    label: str
    version: str


async def predict_customer(
    session: AsyncSession, *, model: NeedsModel, customer_id: int, now: datetime
) -> Need | None:
    scores = await score(session, model=model, now=now, customer_ids=[customer_id])
    if scores.customer_ids.size == 0:
        return None
    [reasons] = model.explain(scores.X[:1])
    return Need(float(scores.probabilities[0]), reasons, model.label, model.version)


# --------------------------------------------------------------------------------------
# Staffing forecast
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CountForecast:
    days: int
    expected: float
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class StaffingForecast:
    customers: int
    level: float
    day: CountForecast
    week: CountForecast


def within(
    probabilities: FloatArray, days: float, horizon_days: float = HORIZON_DAYS
) -> FloatArray:
    """``1 - (1 - p) ** (days / horizon)``: the chance within ``days`` at a constant daily rate."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    return 1.0 - np.power(1.0 - p, days / horizon_days)


def staffing_forecast(
    probabilities: FloatArray, *, horizon_days: int = HORIZON_DAYS, level: float = 0.90
) -> StaffingForecast:
    """Expected customers needing help tomorrow and this week, with a ``level`` interval."""
    out = []
    for days in (1, 7):
        expected, low, high = poisson_binomial_interval(
            within(probabilities, days, horizon_days), level
        )
        out.append(CountForecast(days, float(expected), int(low), int(high)))
    return StaffingForecast(int(np.asarray(probabilities).size), level, out[0], out[1])


async def forecast(
    session: AsyncSession,
    *,
    model: NeedsModel,
    now: datetime,
    level: float = 0.90,
    scores: Scores | None = None,
) -> StaffingForecast | None:
    """The forecast for the digest; None for a model without a time horizon (a table label)."""
    if model.horizon_days is None:
        return None
    if scores is None:
        scores = await score(session, model=model, now=now)
    return staffing_forecast(scores.probabilities, horizon_days=model.horizon_days, level=level)
