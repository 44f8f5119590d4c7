"""Need prediction benchmarks: model families on the telco churn table, and training at scale.

    .venv/bin/python bench/bench_needs.py                  # both parts
    .venv/bin/python bench/bench_needs.py --skip-scale     # the telco comparison only
    .venv/bin/python bench/bench_needs.py --skip-telco --customers 100000 --transactions 2000000

Part 1 (needs ``../shared/data/telco_churn``; skipped when absent): on the stratified 20% hold-out
(seed 42) of the IBM telco churn table, a plain decision tree, logistic regression on one-hot
categories and standardised numbers (C chosen by 5-fold CV), histogram gradient boosting (the
better of Kefu's two settings by CV), and Kefu's pick through the real command,
``needs train --data FILE --label-column Churn --id-column customerID --json``.

Part 2: a seeded, generated SQLite database (under /tmp) with N customers and M transactions plus
tickets, messages and ratings whose rate depends on a hidden per-customer propensity; then the
real ``needs train`` from the database is timed end to end (features at 4 cutoffs, model choice,
calibration, hold-out), and ``needs --top 10`` (scoring every customer and the forecast).
Prints figures and a JSON summary line.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

from crm import features, needs
from crm.migrate import upgrade

TELCO = (
    Path(__file__).resolve().parent.parent.parent
    / "shared/data/telco_churn/WA_Fn-UseC_-Telco-Customer-Churn.csv"
)


def run_cli(args: list[str], data_dir: Path) -> dict[str, Any]:
    """Run a Kefu command as ``main.py`` does (Typer app + crm.cli.register) and parse --json."""
    import typer
    from typer.testing import CliRunner

    from crm import cli
    from settings import load_settings

    app = typer.Typer()

    @app.command()
    def noop() -> None:
        """Keeps Typer in group mode."""

    cli.register(app, lambda: load_settings(_env_file=None, data_dir=data_dir))
    result = CliRunner().invoke(app, args)
    if result.exit_code != 0:
        raise SystemExit(f"command failed ({result.exit_code}): {result.output}")
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def telco() -> dict[str, Any]:
    table = features.read_table(TELCO, label_column="Churn", id_column="customerID")
    schema = features.infer_schema(table.columns)
    records = [{n: table.columns[n][i] for n in schema.names} for i in range(len(table.ids))]
    X, y = schema.encode(records), table.y
    train, test = needs._split(y, None)
    cv = StratifiedKFold(5, shuffle=True, random_state=needs.SEED)
    out: dict[str, Any] = {}

    def holdout(model: Any) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X[train], y[train])
        return float(roc_auc_score(y[test], model.predict_proba(X[test])[:, 1]))

    plain = Pipeline(
        [
            ("encode", needs.TabularEncoder(schema.kinds, expand=False)),
            ("model", DecisionTreeClassifier(random_state=needs.SEED)),
        ]
    )
    out["decision tree (plain)"] = holdout(plain)
    best_c, best_cv = 1.0, -1.0
    for c in (0.01, 0.03, 0.1, 0.3, 1.0, 3.0):
        lr = Pipeline(
            [
                ("encode", needs.TabularEncoder(schema.kinds, expand=False)),
                ("model", LogisticRegression(C=c, max_iter=3000)),
            ]
        )
        score = float(cross_val_score(lr, X[train], y[train], cv=cv, scoring="roc_auc").mean())
        if score > best_cv:
            best_c, best_cv = c, score
    out[f"logistic regression, one-hot (C={best_c} by CV)"] = holdout(
        Pipeline(
            [
                ("encode", needs.TabularEncoder(schema.kinds, expand=False)),
                ("model", LogisticRegression(C=best_c, max_iter=3000)),
            ]
        )
    )
    hgb = [c for c in needs.candidates() if c.family == "hgb"]
    scores = [
        float(
            cross_val_score(
                c.build(schema.kinds), X[train], y[train], cv=cv, scoring="roc_auc"
            ).mean()
        )
        for c in hgb
    ]
    pick = hgb[int(np.argmax(scores))]
    out[f"hist. gradient boosting ({pick.label} by CV)"] = holdout(pick.build(schema.kinds))
    tree = [c for c in needs.candidates() if c.family == "tree"]
    tree_scores = [
        float(
            cross_val_score(
                c.build(schema.kinds), X[train], y[train], cv=cv, scoring="roc_auc"
            ).mean()
        )
        for c in tree
    ]
    tree_pick = tree[int(np.argmax(tree_scores))]
    out[f"decision tree ({tree_pick.label} by CV)"] = holdout(tree_pick.build(schema.kinds))
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        kefu = run_cli(
            [
                "needs",
                "train",
                "--data",
                str(TELCO),
                "--label-column",
                "Churn",
                "--id-column",
                "customerID",
                "--json",
            ],
            Path(tmp),
        )
        seconds = time.perf_counter() - started
    print("\n== Telco churn: stratified 20% hold-out (1,409 customers), seed 42 ==")
    for name, auc in out.items():
        print(f"  {name:<70} ROC AUC {auc:.4f}")
    print(
        f"  {'Kefu pick via needs train --data: ' + kefu['model']:<70} ROC AUC {kefu['auc']:.4f}  "
        f"PR AUC {kefu['pr_auc']:.4f}  accuracy {kefu['accuracy']:.4f}  Brier {kefu['brier']:.4f}"
        f"  ({seconds:.1f} s)"
    )
    return {
        "baselines": out,
        "kefu": {k: kefu[k] for k in ("model", "auc", "pr_auc", "accuracy", "brier")},
        "seconds": seconds,
    }


# --------------------------------------------------------------------------------------
# Generated database
# --------------------------------------------------------------------------------------


def _ts(values: np.ndarray) -> list[str]:
    """Epoch seconds -> SQLite text as SQLAlchemy stores a UTC DateTime."""
    base = datetime(1970, 1, 1)  # noqa: DTZ001 - SQLite stores naive UTC
    return [(base + timedelta(seconds=float(v))).strftime("%Y-%m-%d %H:%M:%S.%f") for v in values]


def generate(path: Path, customers: int, transactions: int, seed: int = 42) -> dict[str, int]:
    """A reproducible CRM history: propensity drives orders, categories, tickets and moods."""
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC).timestamp()  # the command trains relative to the real clock
    day = 86400.0
    z = rng.normal(size=customers)
    created = now - rng.uniform(60, 730, customers) * day
    ids = np.arange(1, customers + 1)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    names = [f"Customer {i}" for i in ids]
    con.executemany(
        "INSERT INTO customers (id, first_name, language, external_id, tags, attributes, "
        "created_at) VALUES (?, ?, 'en', ?, '[]', '{}', ?)",
        zip(ids.tolist(), names, [f"C{i:06d}" for i in ids], _ts(created), strict=True),
    )
    # Transactions: more for engaged customers; "electronics" buyers need more help.
    weight = np.exp(0.3 * rng.normal(size=customers) + 0.2 * z)
    per = rng.multinomial(transactions, weight / weight.sum())
    owner = np.repeat(ids, per)
    start = np.repeat(created, per)
    when = start + rng.uniform(0, 1, owner.size) * (now - start)
    cats = np.array(["electronics", "books", "home", "toys", "garden", "sports"])
    p_elec = 1 / (1 + np.exp(-(z[owner - 1] - 1.0)))
    cat = np.where(rng.random(owner.size) < p_elec, 0, rng.integers(1, cats.size, owner.size))
    amount = np.round(rng.gamma(2.0, 25.0, owner.size), 2)
    status = np.where(rng.random(owner.size) < 0.03, "refunded", "paid")
    con.executemany(
        "INSERT INTO transactions (customer_id, external_id, occurred_at, amount, currency, "
        "category, status) VALUES (?, ?, ?, ?, 'EUR', ?, ?)",
        zip(
            owner.tolist(),
            [f"T{i}" for i in range(owner.size)],
            _ts(when),
            amount.tolist(),
            cats[cat].tolist(),
            status.tolist(),
            strict=True,
        ),
    )
    # Tickets: a Poisson process whose daily rate rises with propensity and with recent orders.
    rate = 0.004 * np.exp(0.9 * z) * (1 + per / max(per.mean(), 1) * 0.5)
    span = (now - created) / day
    n_tickets = rng.poisson(rate * span)
    t_owner = np.repeat(ids, n_tickets)
    t_start = np.repeat(created, n_tickets)
    t_when = t_start + rng.uniform(0, 1, t_owner.size) * (now - t_start)
    resolved = t_when + rng.exponential(2 * day, t_owner.size)
    is_open = resolved > now
    t_ids = np.arange(1, t_owner.size + 1)
    con.executemany(
        "INSERT INTO tickets (id, number, customer_id, status, subject, priority, reopened_count, "
        "created_at, updated_at, resolved_at) VALUES (?, ?, ?, ?, '', 2, 0, ?, ?, ?)",
        zip(
            t_ids.tolist(),
            (t_ids + 1000).tolist(),
            t_owner.tolist(),
            np.where(is_open, "open", "resolved").tolist(),
            _ts(t_when),
            _ts(t_when),
            [None if o else s for o, s in zip(is_open.tolist(), _ts(resolved), strict=True)],
            strict=True,
        ),
    )
    negative = rng.random(t_owner.size) < 1 / (1 + np.exp(-(z[t_owner - 1] - 0.5)))
    con.executemany(
        "INSERT INTO messages (customer_id, ticket_id, direction, author_kind, text, sentiment, "
        "created_at) VALUES (?, ?, 'in', 'customer', 'help', ?, ?)",
        zip(
            t_owner.tolist(),
            t_ids.tolist(),
            np.where(negative, "negative", "neutral").tolist(),
            _ts(t_when),
            strict=True,
        ),
    )
    rated = (~is_open) & (rng.random(t_owner.size) < 0.5)
    score = np.clip(np.round(4.2 - 0.8 * z[t_owner - 1] + rng.normal(0, 0.8, t_owner.size)), 1, 5)
    con.executemany(
        "INSERT INTO ratings (ticket_id, customer_id, score, created_at) VALUES (?, ?, ?, ?)",
        zip(
            t_ids[rated].tolist(),
            t_owner[rated].tolist(),
            score[rated].astype(int).tolist(),
            _ts(resolved[rated]),
            strict=True,
        ),
    )
    con.commit()
    con.close()
    return {
        "customers": customers,
        "transactions": int(owner.size),
        "tickets": int(t_owner.size),
        "ratings": int(rated.sum()),
    }


def scale(customers: int, transactions: int, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "kefu.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    counts = generate(db, customers, transactions)
    generated = time.perf_counter() - started
    print(f"\n== Generated database ({generated:.0f} s): {counts} ==")
    started = time.perf_counter()
    trained = run_cli(["needs", "train", "--json"], folder)
    train_seconds = time.perf_counter() - started
    print(
        f"  needs train from the database: {train_seconds:.1f} s wall "
        f"({trained['rows']} rows = customers x cutoffs; model {trained['model']})"
    )
    print(
        f"  hold-out: ROC AUC {trained['auc']:.4f}  PR AUC {trained['pr_auc']:.4f}  "
        f"accuracy {trained['accuracy']:.4f}  Brier {trained['brier']:.4f}"
    )
    started = time.perf_counter()
    listing = run_cli(["needs", "--top", "10", "--json"], folder)
    list_seconds = time.perf_counter() - started
    forecast = listing["forecast"]
    day, week = forecast["day"], forecast["week"]
    print(
        f"  needs --top 10 (scores {forecast['customers']} customers + forecast): "
        f"{list_seconds:.1f} s; tomorrow {day['expected']:.1f} [{day['low']}, {day['high']}], "
        f"7 days {week['expected']:.1f} [{week['low']}, {week['high']}]"
    )
    return {
        "generated": counts,
        "train_seconds": train_seconds,
        "train": {k: trained[k] for k in ("model", "auc", "pr_auc", "accuracy", "brier", "rows")},
        "candidates": trained["candidates"],
        "list_seconds": list_seconds,
        "forecast": forecast,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--transactions", type=int, default=2_000_000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/kefu-bench-needs"))  # noqa: S108
    parser.add_argument("--skip-telco", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    summary: dict[str, Any] = {}
    if not args.skip_telco:
        if TELCO.exists():
            summary["telco"] = telco()
        else:
            print(f"telco data not found at {TELCO}: part 1 skipped")
    if not args.skip_scale:
        summary["scale"] = scale(args.customers, args.transactions, args.folder)
    print("\nSUMMARY " + json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
