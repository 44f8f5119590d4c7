"""Features for need prediction: from the CRM database, or from a flat customer table.

Database features describe each customer as of a *cutoff* moment, using only what happened before
it, so the same code builds training rows (several past cutoffs, label = "opened a ticket in the
``horizon`` days after the cutoff") and prediction rows (cutoff = now). They are computed with one
SQL aggregate query per table and NumPy, never with ORM objects, so 100,000 customers with
2,000,000 transactions take seconds.

Missing values stay NaN (no orders: no recency; never rated: no mean rating); the models impute
them and add "is missing" indicators.

A flat table (one row per customer, e.g. an export with a churn column) is typed column by column:
numbers stay numbers, everything else is a category (the most frequent :data:`MAX_CATEGORIES`
values, the rest pooled as "other"); id-like text columns are dropped.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Float, and_, case, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.models import Customer, Direction, Message, Rating, Ticket, Transaction

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Transactions with these statuses are not counted as purchases.
EXCLUDED_STATUSES = ("failed", "cancelled", "canceled", "refunded", "void", "declined")
#: Number of transaction categories that get a share feature.
MAX_CATEGORY_FEATURES = 8
#: Categorical columns of flat tables keep this many values (the rest is "other").
MAX_CATEGORIES = 30
NEGATIVE = "negative"
DAY = 86400.0

BASE_FEATURES = (
    "tenure_days",  # days since the customer record was created
    "recency_days",  # days since the last order (NaN: never ordered)
    "orders_total",  # number of orders before the cutoff
    "orders_90d",  # orders in the 90 days before the cutoff
    "monetary_total",  # sum of order amounts (all currencies added up)
    "monetary_90d",
    "mean_order_value",  # NaN: never ordered
    "tickets_30d",  # tickets opened in the 30 days before the cutoff
    "tickets_90d",
    "tickets_total",
    "open_tickets",  # tickets open at the cutoff
    "negative_share",  # share of the customer's analysed messages with negative sentiment
    "mean_rating",  # NaN: never rated
    "days_since_contact",  # days since the customer's last message (NaN: never wrote)
)
CATEGORY_PREFIX = "category_share:"

ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class FeatureMatrix:
    """One row per customer: ``X[i]`` describes ``customer_ids[i]`` as of ``cutoff``."""

    customer_ids: IntArray
    names: list[str]
    X: FloatArray
    cutoff: datetime


def feature_names(categories: Sequence[str]) -> list[str]:
    return [*BASE_FEATURES, *(CATEGORY_PREFIX + c for c in categories)]


def _days(cutoff: datetime, moments: Iterable[datetime | None]) -> FloatArray:
    ref = cutoff.timestamp()
    return np.array(
        [np.nan if m is None else (ref - m.timestamp()) / DAY for m in moments], dtype=np.float64
    )


def _counted_purchase() -> object:
    return or_(Transaction.status.is_(None), Transaction.status.not_in(EXCLUDED_STATUSES))


async def top_categories(session: AsyncSession, *, limit: int = MAX_CATEGORY_FEATURES) -> list[str]:
    """The most frequent transaction categories (they get a share feature each)."""
    result = await session.execute(
        select(Transaction.category, func.count())
        .where(Transaction.category.is_not(None))
        .group_by(Transaction.category)
        .order_by(func.count().desc(), Transaction.category)
        .limit(limit)
    )
    return [str(c) for c, _ in result]


async def first_activity(session: AsyncSession) -> datetime | None:
    """When the CRM's history starts (the oldest customer record)."""
    value = await session.scalar(select(func.min(Customer.created_at)))
    return value if isinstance(value, datetime) else None


async def compute(
    session: AsyncSession,
    *,
    cutoff: datetime,
    categories: Sequence[str],
    customer_ids: Sequence[int] | None = None,
) -> FeatureMatrix:
    """Features of every customer that existed at ``cutoff`` (or of ``customer_ids``)."""
    names = feature_names(categories)
    query = select(Customer.id, Customer.created_at).where(Customer.created_at <= cutoff)
    if customer_ids is not None:
        query = query.where(Customer.id.in_(list(customer_ids)))
    rows = (await session.execute(query.order_by(Customer.id))).all()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    X = np.full((ids.size, len(names)), np.nan, dtype=np.float64)
    if ids.size == 0:
        return FeatureMatrix(ids, names, X, cutoff)
    col = {n: i for i, n in enumerate(names)}
    X[:, col["tenure_days"]] = _days(cutoff, (r[1] for r in rows))
    for name in (
        "orders_total",
        "orders_90d",
        "monetary_total",
        "monetary_90d",
        "tickets_30d",
        "tickets_90d",
        "tickets_total",
        "open_tickets",
        *(CATEGORY_PREFIX + c for c in categories),
    ):
        X[:, col[name]] = 0.0

    def place(found: Sequence[int]) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
        arr = np.asarray(found, dtype=np.int64)
        pos = np.searchsorted(ids, arr)
        pos = np.clip(pos, 0, ids.size - 1)
        return pos, ids[pos] == arr

    only = (lambda column: column.in_(list(customer_ids))) if customer_ids is not None else None
    since_90 = cutoff - timedelta(days=90)
    since_30 = cutoff - timedelta(days=30)

    # Transactions: recency, frequency, monetary value, category mix.
    t = Transaction
    amount = cast(t.amount, Float)
    tx_query = (
        select(
            t.customer_id,
            func.count(),
            func.sum(case((t.occurred_at >= since_90, 1), else_=0)),
            func.sum(amount),
            func.sum(case((t.occurred_at >= since_90, amount), else_=0.0)),
            func.max(t.occurred_at),
            *(func.sum(case((t.category == c, 1), else_=0)) for c in categories),
        )
        .where(t.occurred_at < cutoff, _counted_purchase())  # type: ignore[arg-type]
        .group_by(t.customer_id)
    )
    if only is not None:
        tx_query = tx_query.where(only(t.customer_id))
    tx = (await session.execute(tx_query)).all()
    if tx:
        pos, ok = place([r[0] for r in tx])
        orders = np.array([r[1] for r in tx], dtype=np.float64)
        values = np.array(
            [[r[2] or 0, r[3] or 0.0, r[4] or 0.0] for r in tx], dtype=np.float64
        ).reshape(-1, 3)
        X[pos[ok], col["orders_total"]] = orders[ok]
        X[pos[ok], col["orders_90d"]] = values[ok, 0]
        X[pos[ok], col["monetary_total"]] = values[ok, 1]
        X[pos[ok], col["monetary_90d"]] = values[ok, 2]
        X[pos[ok], col["mean_order_value"]] = values[ok, 1] / np.maximum(orders[ok], 1.0)
        X[pos[ok], col["recency_days"]] = _days(cutoff, (r[5] for r in tx))[ok]
        if categories:
            counts = np.array([r[6:] for r in tx], dtype=np.float64).reshape(len(tx), -1)
            shares = counts / np.maximum(orders, 1.0)[:, None]
            for j, c in enumerate(categories):
                X[pos[ok], col[CATEGORY_PREFIX + c]] = shares[ok, j]

    # Tickets: recent tickets, open tickets.
    k = Ticket
    done_at = func.coalesce(k.resolved_at, k.closed_at)
    tk_query = (
        select(
            k.customer_id,
            func.sum(case((k.created_at >= since_30, 1), else_=0)),
            func.sum(case((k.created_at >= since_90, 1), else_=0)),
            func.count(),
            func.sum(case((or_(done_at.is_(None), done_at >= cutoff), 1), else_=0)),
        )
        .where(k.created_at < cutoff)
        .group_by(k.customer_id)
    )
    if only is not None:
        tk_query = tk_query.where(only(k.customer_id))
    tk = (await session.execute(tk_query)).all()
    if tk:
        pos, ok = place([r[0] for r in tk])
        values = np.array([r[1:5] for r in tk], dtype=np.float64).reshape(-1, 4)
        for j, name in enumerate(("tickets_30d", "tickets_90d", "tickets_total", "open_tickets")):
            X[pos[ok], col[name]] = values[ok, j]

    # Messages: negative share and days since the last contact.
    m = Message
    msg_query = (
        select(
            m.customer_id,
            func.sum(case((m.sentiment.is_not(None), 1), else_=0)),
            func.sum(case((m.sentiment == NEGATIVE, 1), else_=0)),
            func.max(m.created_at),
        )
        .where(m.direction == Direction.INBOUND, m.created_at < cutoff)
        .group_by(m.customer_id)
    )
    if only is not None:
        msg_query = msg_query.where(only(m.customer_id))
    msg = (await session.execute(msg_query)).all()
    if msg:
        pos, ok = place([r[0] for r in msg])
        analysed = np.array([r[1] or 0 for r in msg], dtype=np.float64)
        negative = np.array([r[2] or 0 for r in msg], dtype=np.float64)
        share = np.where(analysed > 0, negative / np.maximum(analysed, 1.0), np.nan)
        X[pos[ok], col["negative_share"]] = share[ok]
        X[pos[ok], col["days_since_contact"]] = _days(cutoff, (r[3] for r in msg))[ok]

    # Ratings: the mean score so far.
    r_query = (
        select(Rating.customer_id, func.avg(cast(Rating.score, Float)))
        .where(Rating.created_at < cutoff)
        .group_by(Rating.customer_id)
    )
    if only is not None:
        r_query = r_query.where(only(Rating.customer_id))
    rt = (await session.execute(r_query)).all()
    if rt:
        pos, ok = place([r[0] for r in rt])
        X[pos[ok], col["mean_rating"]] = np.array([r[1] for r in rt], dtype=np.float64)[ok]
    return FeatureMatrix(ids, names, X, cutoff)


async def ticket_labels(
    session: AsyncSession, *, customer_ids: IntArray, cutoff: datetime, horizon_days: int = 30
) -> NDArray[np.int64]:
    """1 where the customer opened a ticket in ``[cutoff, cutoff + horizon)``, else 0."""
    end = cutoff + timedelta(days=horizon_days)
    result = await session.execute(
        select(Ticket.customer_id)
        .where(and_(Ticket.created_at >= cutoff, Ticket.created_at < end))
        .distinct()
    )
    positive = np.array(sorted(int(r[0]) for r in result), dtype=np.int64)
    return np.isin(customer_ids, positive).astype(np.int64)


@dataclass(frozen=True, slots=True)
class HistoryDataset:
    """Training rows from several past cutoffs (a customer appears once per cutoff)."""

    X: FloatArray
    y: NDArray[np.int64]
    customer_ids: IntArray
    names: list[str]
    categories: list[str]
    cutoffs: list[datetime]
    horizon_days: int


def training_cutoffs(
    now: datetime, first: datetime | None, *, count: int, step_days: int, horizon_days: int
) -> list[datetime]:
    """The latest cutoff leaves a full label window before ``now``; older ones step back.

    Cutoffs earlier than 30 days after the first customer record are dropped (no history yet).
    """
    latest = now - timedelta(days=horizon_days)
    cutoffs = [latest - timedelta(days=step_days * i) for i in range(count)]
    if first is not None:
        cutoffs = [c for c in cutoffs if c >= first + timedelta(days=30)]
    return cutoffs


async def history_dataset(
    session: AsyncSession,
    *,
    now: datetime,
    cutoffs: int = 4,
    step_days: int = 30,
    horizon_days: int = 30,
    progress: ProgressCallback | None = None,
) -> HistoryDataset:
    """Features at each of ``cutoffs`` past moments and whether a ticket followed within 30 days."""
    categories = await top_categories(session)
    first = await first_activity(session)
    moments = training_cutoffs(
        now, first, count=cutoffs, step_days=step_days, horizon_days=horizon_days
    )
    blocks: list[FeatureMatrix] = []
    labels: list[NDArray[np.int64]] = []
    for i, cutoff in enumerate(moments):
        if progress is not None:
            progress("features", i, len(moments))
        matrix = await compute(session, cutoff=cutoff, categories=categories)
        blocks.append(matrix)
        labels.append(
            await ticket_labels(
                session, customer_ids=matrix.customer_ids, cutoff=cutoff, horizon_days=horizon_days
            )
        )
    if progress is not None:
        progress("features", len(moments), len(moments))
    names = feature_names(categories)
    if not blocks:
        empty = np.zeros((0, len(names)))
        return HistoryDataset(
            empty, np.zeros(0, np.int64), np.zeros(0, np.int64), names, categories, [], 0
        )
    return HistoryDataset(
        X=np.vstack([b.X for b in blocks]),
        y=np.concatenate(labels),
        customer_ids=np.concatenate([b.customer_ids for b in blocks]),
        names=names,
        categories=categories,
        cutoffs=moments,
        horizon_days=horizon_days,
    )


# --------------------------------------------------------------------------------------
# Flat tables
# --------------------------------------------------------------------------------------

_POSITIVE = {"1", "yes", "y", "true", "t", "positive", "pos"}
_NEGATIVE = {"0", "no", "n", "false", "f", "negative", "neg"}


class TableError(ValueError):
    """The table cannot be used for training (plain words for the person running it)."""


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    categories: tuple[str, ...] | None = None  # None: numeric

    @property
    def is_numeric(self) -> bool:
        return self.categories is None


@dataclass(frozen=True, slots=True)
class TableSchema:
    """How the columns of a flat customer table become a numeric matrix.

    Numeric cells parse as floats (blank: NaN). Categorical cells become the index of their value
    in ``categories``; values never seen in training (and the pooled rare ones) get
    ``len(categories)``, "other".
    """

    columns: tuple[ColumnSpec, ...]
    dropped: tuple[str, ...] = field(default=())

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def kinds(self) -> tuple[int, ...]:
        """0 for numeric columns, the number of codes (categories + other) for categorical."""
        return tuple(0 if c.categories is None else len(c.categories) + 1 for c in self.columns)

    def encode(self, records: Sequence[Mapping[str, object]]) -> FloatArray:
        X = np.full((len(records), len(self.columns)), np.nan, dtype=np.float64)
        for j, spec in enumerate(self.columns):
            if spec.categories is None:
                for i, record in enumerate(records):
                    X[i, j] = _to_float(record.get(spec.name))
            else:
                codes = {v: k for k, v in enumerate(spec.categories)}
                other = len(spec.categories)
                for i, record in enumerate(records):
                    X[i, j] = codes.get(_cell(record.get(spec.name)), other)
        return X

    def describe(self, j: int, value: float) -> str:
        """A feature value as a person reads it."""
        spec = self.columns[j]
        if spec.categories is None:
            return "none" if math.isnan(value) else f"{value:g}"
        k = int(value)
        if 0 <= k < len(spec.categories):
            return spec.categories[k] or "(blank)"
        return "other"


def _cell(value: object) -> str:
    return "" if value is None else str(value).strip()


def _to_float(value: object) -> float:
    text = _cell(value)
    if not text:
        return math.nan
    try:
        number = float(text)
    except ValueError:
        return math.nan
    return number if math.isfinite(number) else math.nan


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def infer_schema(columns: Mapping[str, Sequence[str]]) -> TableSchema:
    """Type each column: numeric if every non-blank cell is a number, else categorical."""
    specs: list[ColumnSpec] = []
    dropped: list[str] = []
    for name, cells in columns.items():
        values = [c.strip() for c in cells]
        present = [v for v in values if v]
        if not present:
            dropped.append(name)
            continue
        if all(_is_number(v) for v in present):
            if len(set(present)) > 1:
                specs.append(ColumnSpec(name))
            else:
                dropped.append(name)
            continue
        counts = Counter(values)
        if len(counts) > max(50, len(values) // 2):
            dropped.append(name)  # free text or an id: one value per customer
            continue
        kept = tuple(sorted(v for v, n in counts.most_common(MAX_CATEGORIES) if n >= 2))
        if len(kept) < 2 and len(counts) < 2:
            dropped.append(name)
            continue
        specs.append(ColumnSpec(name, kept))
    return TableSchema(tuple(specs), tuple(dropped))


def parse_label(value: str) -> int | None:
    text = value.strip().lower()
    if text in _POSITIVE:
        return 1
    if text in _NEGATIVE:
        return 0
    return None


@dataclass(frozen=True, slots=True)
class TableDataset:
    ids: list[str]
    columns: dict[str, list[str]]
    y: NDArray[np.int64]
    skipped_rows: int


def read_table(path: Path, *, label_column: str, id_column: str | None) -> TableDataset:
    """Read a flat customer table (CSV, UTF-8, header row) with a yes/no label column."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise TableError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        try:
            header_line = handle.readline()
            delimiter = max(",;\t|", key=header_line.count)
            handle.seek(0)
            reader = csv.DictReader(handle, delimiter=delimiter)
            headers = [h.strip() for h in reader.fieldnames or []]
            reader.fieldnames = headers
            if label_column not in headers:
                raise TableError(
                    f"the table has no column {label_column!r} (columns: {', '.join(headers)})"
                )
            if id_column is not None and id_column not in headers:
                raise TableError(f"the table has no column {id_column!r}")
            features = [h for h in headers if h not in (label_column, id_column) and h]
            columns: dict[str, list[str]] = {h: [] for h in features}
            ids: list[str] = []
            labels: list[int] = []
            bad: list[str] = []
            skipped = 0
            for n, row in enumerate(reader, start=2):
                label = parse_label(row.get(label_column) or "")
                if label is None:
                    skipped += 1
                    if len(bad) < 3:
                        bad.append(f"line {n}: {row.get(label_column)!r}")
                    continue
                labels.append(label)
                ids.append((row.get(id_column) or "") if id_column else str(n))
                for h in features:
                    columns[h].append(row.get(h) or "")
        except UnicodeDecodeError as exc:
            raise TableError(f"{path.name} is not UTF-8 text") from exc
        except csv.Error as exc:
            raise TableError(f"{path.name} is not valid CSV ({exc})") from exc
    if labels and skipped > len(labels):
        raise TableError(
            f"the label column {label_column!r} must hold yes/no, true/false or 1/0 values "
            f"({'; '.join(bad)})"
        )
    return TableDataset(ids, columns, np.array(labels, dtype=np.int64), skipped)
