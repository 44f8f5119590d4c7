"""Need prediction: features on a hand-made history, training, registry, reasons, forecast."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import typer
from scipy import stats as sps
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from crm import cli, features, needs
from crm.db import SessionFactory, session_scope
from crm.models import Customer, Message, Rating, Ticket, Transaction
from settings import load_settings

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SMALL_GRID = [needs.Candidate("tree", {"max_depth": 3}), needs.Candidate("logistic", {"C": 1.0})]


def days(n: float) -> timedelta:
    return timedelta(days=n)


def add_customer(session: AsyncSession, external_id: str, created: datetime) -> Customer:
    row = Customer(
        external_id=external_id, first_name=external_id, created_at=created, tags=[], attributes={}
    )
    session.add(row)
    return row


def add_ticket(
    session: AsyncSession, customer: Customer, created: datetime, resolved: datetime | None
) -> Ticket:
    ticket = Ticket(
        customer_id=customer.id,
        status="resolved" if resolved else "open",
        created_at=created,
        updated_at=created,
        resolved_at=resolved,
    )
    session.add(ticket)
    return ticket


def tx(
    customer: Customer, when: datetime, amount: str, category: str, status: str | None = "paid"
) -> Transaction:
    return Transaction(
        customer_id=customer.id,
        occurred_at=when,
        amount=Decimal(amount),
        currency="EUR",
        category=category,
        status=status,
    )


async def hand_made_history(factory: SessionFactory) -> tuple[int, int]:
    async with session_scope(factory) as session:
        a = add_customer(session, "A", NOW - days(200))
        b = add_customer(session, "B", NOW - days(40))
        add_customer(session, "C", NOW + days(1))  # not a customer yet at the cutoff
        await session.flush()
        session.add_all(
            [
                tx(a, NOW - days(100), "10.00", "tools"),
                tx(a, NOW - days(10), "30.00", "books"),
                tx(a, NOW - days(5), "99.00", "tools", status="refunded"),  # not counted
                tx(a, NOW + days(1), "50.00", "games"),  # after the cutoff
            ]
        )
        t1 = add_ticket(session, a, NOW - days(20), NOW - days(19))
        add_ticket(session, a, NOW - days(60), NOW - days(59))
        t3 = add_ticket(session, a, NOW - days(2), None)
        add_ticket(session, a, NOW + days(5), None)  # the label window
        await session.flush()
        for when, sentiment, direction in (
            (NOW - days(20), "negative", "in"),
            (NOW - days(2), "neutral", "in"),
            (NOW - days(1), None, "in"),
            (NOW - days(0.5), "negative", "out"),  # the agent's words do not count
        ):
            session.add(
                Message(
                    customer_id=a.id,
                    ticket_id=t3.id,
                    direction=direction,
                    author_kind="customer",
                    text="x",
                    sentiment=sentiment,
                    created_at=when,
                )
            )
        other = add_ticket(session, a, NOW - days(50), NOW - days(49))
        await session.flush()
        session.add(Rating(ticket_id=t1.id, customer_id=a.id, score=2, created_at=NOW - days(18)))
        session.add(
            Rating(ticket_id=other.id, customer_id=a.id, score=4, created_at=NOW - days(48))
        )
        return a.id, b.id


async def test_features_on_a_hand_made_history(session_factory: SessionFactory) -> None:
    a, b = await hand_made_history(session_factory)
    async with session_factory() as session:
        categories = await features.top_categories(session)
        matrix = await features.compute(session, cutoff=NOW, categories=categories)
        labels = await features.ticket_labels(session, customer_ids=matrix.customer_ids, cutoff=NOW)
    assert categories == ["tools", "books", "games"]
    assert matrix.customer_ids.tolist() == [a, b]
    got = {name: matrix.X[:, j].tolist() for j, name in enumerate(matrix.names)}
    nan = math.nan
    expected = {
        "tenure_days": [200.0, 40.0],
        "recency_days": [10.0, nan],
        "orders_total": [2.0, 0.0],
        "orders_90d": [1.0, 0.0],
        "monetary_total": [40.0, 0.0],
        "monetary_90d": [30.0, 0.0],
        "mean_order_value": [20.0, nan],
        "tickets_30d": [2.0, 0.0],
        "tickets_90d": [4.0, 0.0],
        "tickets_total": [4.0, 0.0],
        "open_tickets": [1.0, 0.0],
        "negative_share": [0.5, nan],
        "mean_rating": [3.0, nan],
        "days_since_contact": [1.0, nan],
        "category_share:tools": [0.5, 0.0],
        "category_share:books": [0.5, 0.0],
        "category_share:games": [0.0, 0.0],
    }
    assert list(got) == list(expected)
    for name, values in expected.items():
        np.testing.assert_allclose(got[name], values, err_msg=name, atol=1e-9)
    assert labels.tolist() == [1, 0]
    # One customer only, as the staff card asks for it.
    async with session_factory() as session:
        single = await features.compute(
            session, cutoff=NOW, categories=categories, customer_ids=[b]
        )
    assert single.customer_ids.tolist() == [b]
    np.testing.assert_allclose(single.X[0], matrix.X[1])


def test_training_cutoffs() -> None:
    cutoffs = features.training_cutoffs(
        NOW, NOW - days(150), count=4, step_days=30, horizon_days=30
    )
    assert cutoffs == [NOW - days(30), NOW - days(60), NOW - days(90), NOW - days(120)]
    short = features.training_cutoffs(NOW, NOW - days(70), count=4, step_days=30, horizon_days=30)
    assert short == [NOW - days(30)]


def test_forecast_interval_against_a_simulation() -> None:
    rng = np.random.default_rng(7)
    p30 = rng.uniform(0.0, 0.4, 800)
    forecast = needs.staffing_forecast(p30, level=0.9)
    assert forecast.customers == 800
    for horizon in (forecast.day, forecast.week):
        p = needs.within(p30, horizon.days)
        np.testing.assert_allclose(p, 1 - (1 - p30) ** (horizon.days / 30))
        draws = (rng.random((20000, p.size)) < p).sum(axis=1)
        assert horizon.expected == pytest.approx(p.sum())
        assert draws.mean() == pytest.approx(horizon.expected, rel=0.02)
        inside = np.mean((draws >= horizon.low) & (draws <= horizon.high))
        assert 0.9 <= inside <= 0.96  # at least the level, and not much wider
    # Equal probabilities: the binomial of the design.
    equal = needs.staffing_forecast(np.full(300, 0.3), level=0.9)
    q = 1 - 0.7 ** (1 / 30)
    assert (equal.day.low, equal.day.high) == (
        int(sps.binom.ppf(0.05, 300, q)),
        int(sps.binom.ppf(0.95, 300, q)),
    )


def synthetic_table(path: Path, n: int = 400) -> None:
    rng = np.random.default_rng(3)
    lines = ["id,usage,plan,region,churn"]
    for i in range(n):
        usage = rng.uniform(0, 100)
        plan = rng.choice(["basic", "pro", "max"], p=[0.25, 0.5, 0.25])
        region = rng.choice(["north", "south"])
        logit = 2.5 - usage / 15 + (1.5 if plan == "basic" else 0.0)
        churn = "Yes" if rng.random() < 1 / (1 + math.exp(-logit)) else "No"
        usage_cell = "" if i % 50 == 0 else f"{usage:.1f}"
        lines.append(f"U{i},{usage_cell},{plan},{region},{churn}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_train_from_a_table_saves_a_versioned_model(tmp_path: Path) -> None:
    data = tmp_path / "table.csv"
    synthetic_table(data)
    models = tmp_path / "models"
    result = needs.train_table(
        data, label_column="churn", id_column="id", models_dir=models, now=NOW, grid=SMALL_GRID
    )
    assert result.version == "20260302T100000Z"
    assert (result.rows, result.holdout_rows) == (400, 80)
    assert result.metrics.auc >= 0.8
    assert 0.0 <= result.metrics.brier <= 0.25
    assert [c["model"] for c in result.candidates] == ["tree(max_depth=3)", "logistic(C=1.0)"]
    assert (models / "needs" / "current").read_text().strip() == result.version
    meta = needs.load_meta(models)
    assert meta is not None
    assert meta["features"] == ["usage", "plan", "region"]
    assert meta["data_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert meta["metrics"]["auc"] == result.metrics.auc
    assert meta["source"] == "table"
    again = needs.train_table(
        data, label_column="churn", id_column="id", models_dir=models, now=NOW, grid=SMALL_GRID
    )
    assert again.version == "20260302T100000Z-2"
    model = needs.load_current(models)
    assert model is not None and model.version == again.version
    assert model.schema is not None
    X = model.schema.encode(
        [
            {"usage": "2", "plan": "basic", "region": "north"},
            {"usage": "95", "plan": "max", "region": "south"},
        ]
    )
    p = model.predict(X)
    assert p[0] > 0.7 > 0.3 > p[1]
    [risky, safe] = model.explain(X)
    assert [r.feature for r in risky][:2] == ["usage", "plan"]
    assert (risky[0].value, risky[1].value, risky[1].typical) == ("2", "basic", "pro")
    assert all(r.effect > 0 for r in risky)
    assert [r.feature for r in safe if r.feature in ("usage", "plan")] == []  # nothing pushes up


def test_table_errors(tmp_path: Path) -> None:
    data = tmp_path / "table.csv"
    synthetic_table(data, n=40)
    with pytest.raises(needs.NeedsError, match="no column 'Churn'"):
        needs.train_table(data, label_column="Churn", id_column=None, models_dir=tmp_path, now=NOW)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,label\n1,maybe\n2,perhaps\n3,yes\n", encoding="utf-8")
    with pytest.raises(needs.NeedsError, match="yes/no"):
        needs.train_table(bad, label_column="label", id_column=None, models_dir=tmp_path, now=NOW)
    few = tmp_path / "few.csv"
    few.write_text("a,label\n" + "".join(f"{i},{'yes' if i < 3 else 'no'}\n" for i in range(30)))
    with pytest.raises(needs.NeedsError, match="not enough examples"):
        needs.train_table(few, label_column="label", id_column=None, models_dir=tmp_path, now=NOW)


async def generated_history(factory: SessionFactory, n: int = 160) -> None:
    """Customers whose recent tickets and orders make a new ticket more likely."""
    rng = np.random.default_rng(11)
    async with session_scope(factory) as session:
        rows = [add_customer(session, f"G{i}", NOW - days(200)) for i in range(n)]
        await session.flush()
        for i, row in enumerate(rows):
            needy = i % 3 == 0
            for d in range(5, 200, 10 if needy else 40):
                session.add(tx(row, NOW - days(d), "10.00", "tools" if needy else "books"))
            for d in range(2, 190, 12 if needy else 95):
                if rng.random() < (0.8 if needy else 0.3):
                    add_ticket(session, row, NOW - days(d), NOW - days(d - 1))


async def test_train_from_the_database_then_list_and_forecast(
    session_factory: SessionFactory, tmp_path: Path
) -> None:
    await generated_history(session_factory)
    async with session_factory() as session:
        data = await needs.history_dataset(session, now=NOW, cutoffs=3)
    assert data.X.shape == (480, len(features.BASE_FEATURES) + 2)
    assert data.categories == ["tools", "books"]
    assert len(data.cutoffs) == 3
    result = needs.train(data, models_dir=tmp_path, now=NOW, grid=SMALL_GRID)
    assert result.metrics.auc >= 0.75
    model = needs.load_current(tmp_path)
    assert model is not None and model.horizon_days == 30
    async with session_factory() as session:
        top = await needs.at_risk(session, model=model, now=NOW, top=5)
        forecast = await needs.forecast(session, model=model, now=NOW)
        scores = await needs.score(session, model=model, now=NOW)
    assert len(top) == 5
    assert [t.probability for t in top] == sorted((t.probability for t in top), reverse=True)
    assert sum(int(t.external_id[1:]) % 3 == 0 for t in top if t.external_id) >= 4
    assert all(1 <= len(t.reasons) <= 3 for t in top)
    assert forecast is not None
    assert forecast.customers == 160
    assert forecast.week.expected == pytest.approx(needs.within(scores.probabilities, 7).sum())
    assert forecast.day.low <= forecast.day.expected <= forecast.day.high


def test_cli_needs_train_json_and_listing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(needs, "candidates", lambda: list(SMALL_GRID))
    data_dir = tmp_path / "data"
    app = typer.Typer()

    @app.command()
    def noop() -> None:
        """Nothing."""

    cli.register(app, lambda: load_settings(_env_file=None, data_dir=data_dir))
    runner = CliRunner()
    result = runner.invoke(app, ["needs", "--json"])
    assert result.exit_code == 2
    assert "no need model yet" in result.output
    table = tmp_path / "table.csv"
    synthetic_table(table)
    args = ["needs", "train", "--data", str(table), "--label-column", "churn", "--id-column", "id"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert {"auc", "pr_auc", "accuracy", "brier", "model"} <= set(payload)
    assert payload["model"] in ("tree(max_depth=3)", "logistic(C=1.0)")
    assert payload["auc"] >= 0.8
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Hold-out (80 of 400 rows" in result.output
    result = runner.invoke(app, ["needs", "train", "--data", str(table)])
    assert result.exit_code == 2
    assert "--data needs --label-column" in result.output
    result = runner.invoke(app, ["needs", "--json", "--top", "3"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    assert (listing["customers"], listing["forecast"], listing["label"]) == ([], None, "churn")
    result = runner.invoke(app, ["needs", "train"])
    assert result.exit_code == 2
    assert "not enough history" in result.output
    assert "Traceback" not in result.output
