"""Importing customers and transactions from CSV files (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import func, select
from typer.testing import CliRunner

from crm import cli, importer
from crm.db import SessionFactory, session_scope
from crm.importer import ImportFileError, RowError
from crm.models import Customer, Transaction
from settings import load_settings

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

CUSTOMERS = """\
external_id,name,email,phone,telegram,created_at,plan,link_code
C1,Ann Lee,ANN@example.com,+44 7700 900123,@Ann_Lee,2024-01-05,gold,CODE1
C2,Bob Stone,bob@example.com,(555) 123-4567,,,silver,
C3,"Carl ""Multi""
Line",carl@example.com,07700 900124,12345,2024/02/01 10:30,gold,
"""

BAD_CUSTOMERS = """\
external_id,name,email,phone
C1,Ann,ann@example.com,+44 7700 900123
,No Id,x@example.com,
C2,Bob,bob@example,
C3,Carl,,12
C1,Ann again,,
C4,Dee,dee@example.com,+1 555 000 1111,extra
C5,Eve,eve@example.com,
"""

TRANSACTIONS = """\
customer_id,id,date,amount,currency,product,category,status
C1,T1,2024-03-01,10.50,eur,Widget,tools,paid
C1,T2,2024-03-02 14:00,"1,200.00",EUR,Gadget,tools,paid
C9,T3,2024-03-02,5,EUR,X,,
C2,,2024-03-05,abc,EUR,,,
C2,,2024-03-05,7.25,USD,Thing,misc,
C2,T4,03/05/2024,1,USD,Thing,misc,
C1,T1,2024-03-09,1,EUR,Again,,
"""


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


async def import_customers(
    factory: SessionFactory, path: Path, **kwargs: object
) -> importer.ImportReport:
    async with session_scope(factory) as session:
        return await importer.import_customers(session, path=path, now=NOW, **kwargs)  # type: ignore[arg-type]


async def import_transactions(
    factory: SessionFactory, path: Path, **kwargs: object
) -> importer.ImportReport:
    async with session_scope(factory) as session:
        return await importer.import_transactions(session, path=path, **kwargs)  # type: ignore[arg-type]


async def customer(factory: SessionFactory, external_id: str) -> Customer:
    async with factory() as session:
        row = await session.execute(select(Customer).where(Customer.external_id == external_id))
        return row.scalar_one()


async def count(factory: SessionFactory, column: Any) -> int:
    async with factory() as session:
        return int(await session.scalar(select(func.count(column))) or 0)


async def test_good_customers_file(session_factory: SessionFactory, tmp_path: Path) -> None:
    report = await import_customers(session_factory, write(tmp_path, "c.csv", CUSTOMERS))
    assert (report.imported, report.updated, report.skipped, report.errors) == (3, 0, 0, [])
    ann = await customer(session_factory, "C1")
    assert (ann.first_name, ann.email, ann.phone, ann.telegram_username, ann.link_code) == (
        "Ann Lee",
        "ann@example.com",
        "+447700900123",
        "ann_lee",
        "CODE1",
    )
    assert ann.created_at == datetime(2024, 1, 5, tzinfo=UTC)
    assert ann.attributes == {"plan": "gold"}
    bob = await customer(session_factory, "C2")
    assert (bob.phone, bob.created_at, bob.telegram_user_id) == ("5551234567", NOW, None)
    carl = await customer(session_factory, "C3")
    assert (carl.first_name, carl.telegram_user_id, carl.phone) == (
        'Carl "Multi"\nLine',
        12345,
        "7700900124",
    )
    assert carl.created_at == datetime(2024, 2, 1, 10, 30, tzinfo=UTC)


async def test_bad_rows_are_reported_with_line_numbers_and_good_rows_imported(
    session_factory: SessionFactory, tmp_path: Path
) -> None:
    report = await import_customers(session_factory, write(tmp_path, "bad.csv", BAD_CUSTOMERS))
    assert report.errors == [
        RowError(3, "external id is empty"),
        RowError(4, "email 'bob@example' is not an email address"),
        RowError(5, "phone '12' is not a phone number (7 to 15 digits)"),
        RowError(6, "external id C1 repeats line 2"),
        RowError(7, "expected 4 fields, found 5"),
    ]
    assert (report.imported, report.updated, report.skipped, report.error_count) == (2, 0, 0, 5)
    assert await count(session_factory, Customer.id) == 2
    assert (await customer(session_factory, "C5")).email == "eve@example.com"


async def test_reimport_updates_instead_of_duplicating(
    session_factory: SessionFactory, tmp_path: Path
) -> None:
    path = write(tmp_path, "c.csv", CUSTOMERS)
    await import_customers(session_factory, path)
    again = await import_customers(session_factory, path)
    assert (again.imported, again.updated, again.skipped) == (0, 0, 3)
    changed = CUSTOMERS.replace("bob@example.com", "bob@new.example.com").replace(
        "silver", "platinum"
    )
    third = await import_customers(session_factory, write(tmp_path, "c2.csv", changed))
    assert (third.imported, third.updated, third.skipped) == (0, 1, 2)
    bob = await customer(session_factory, "C2")
    assert (bob.email, bob.attributes) == ("bob@new.example.com", {"plan": "platinum"})
    assert await count(session_factory, Customer.id) == 3


async def test_column_mapping_and_semicolons(
    session_factory: SessionFactory, tmp_path: Path
) -> None:
    content = "Kundennummer;E-Mail;Tel;Stadt\nK1;k1@example.com;+49 30 1234567;Berlin\n"
    path = write(tmp_path, "de.csv", content)
    with pytest.raises(ImportFileError, match="no external_id column"):
        await import_customers(session_factory, path)
    mapping = importer.parse_mapping("external_id=Kundennummer, phone=Tel")
    report = await import_customers(session_factory, path, mapping=mapping)
    assert (report.imported, report.errors) == (1, [])
    row = await customer(session_factory, "K1")
    assert (row.email, row.phone, row.attributes) == (
        "k1@example.com",
        "+49301234567",
        {"Stadt": "Berlin"},
    )
    with pytest.raises(ImportFileError, match="FIELD=HEADER"):
        importer.parse_mapping("email")
    with pytest.raises(ImportFileError, match="no column 'Fax'"):
        await import_customers(session_factory, path, mapping={"external_id": "Fax"})


async def test_transactions_good_bad_and_idempotent(
    session_factory: SessionFactory, tmp_path: Path
) -> None:
    await import_customers(session_factory, write(tmp_path, "c.csv", CUSTOMERS))
    path = write(tmp_path, "t.csv", TRANSACTIONS)
    report = await import_transactions(session_factory, path)
    assert report.errors == [
        RowError(4, "unknown customer C9 (import customers first)"),
        RowError(5, "amount 'abc' is not a number (use a dot for decimals)"),
        RowError(7, "date '03/05/2024' is not YYYY-MM-DD[ HH:MM[:SS]]"),
        RowError(8, "same customer and transaction id as line 2"),
    ]
    assert (report.imported, report.updated, report.skipped) == (3, 0, 0)
    async with session_factory() as session:
        rows = (
            await session.execute(
                select(Transaction.external_id, Transaction.amount, Transaction.currency).order_by(
                    Transaction.occurred_at
                )
            )
        ).all()
    assert [(e, Decimal(a), c) for e, a, c in rows] == [
        ("T1", Decimal("10.50"), "EUR"),
        ("T2", Decimal("1200.00"), "EUR"),
        (None, Decimal("7.25"), "USD"),
    ]
    again = await import_transactions(session_factory, path)
    assert (again.imported, again.updated, again.skipped, again.error_count) == (0, 0, 3, 4)
    changed = TRANSACTIONS.replace("10.50,eur,Widget,tools,paid", "10.50,eur,Widget,tools,refunded")
    third = await import_transactions(session_factory, write(tmp_path, "t2.csv", changed))
    assert (third.imported, third.updated, third.skipped) == (0, 1, 2)
    assert await count(session_factory, Transaction.id) == 3


async def test_nothing_is_half_written_when_the_file_breaks_late(
    session_factory: SessionFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "BATCH_SIZE", 500)
    # Past the first 64 KiB (checked up front), after several batches were written.
    lines = ["external_id,name"] + [f"C{i},A rather long customer name {i}" for i in range(3000)]
    data = ("\n".join(lines) + "\n").encode() + b"C-bad,\xff\xfe\n"
    path = tmp_path / "broken.csv"
    path.write_bytes(data)
    with pytest.raises(ImportFileError, match="not UTF-8"):
        await import_customers(session_factory, path)
    assert await count(session_factory, Customer.id) == 0


async def test_file_level_errors(session_factory: SessionFactory, tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="empty"):
        await import_customers(session_factory, write(tmp_path, "e.csv", ""))
    with pytest.raises(ImportFileError, match="cannot read"):
        await import_customers(session_factory, tmp_path / "missing.csv")
    with pytest.raises(ImportFileError, match="repeats column"):
        await import_customers(session_factory, write(tmp_path, "d.csv", "external_id,a,a\n"))
    with pytest.raises(ImportFileError, match="amount"):
        await import_transactions(
            session_factory, write(tmp_path, "t.csv", "customer_id,date\nC1,2024-01-01\n")
        )


def test_parsers() -> None:
    assert importer.parse_amount(" 1,234.5 ") == Decimal("1234.50")
    assert importer.parse_amount("-0.005") == Decimal("-0.01")
    assert importer.parse_datetime("2024-03-01T12:00:00Z") == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert importer.parse_datetime("2024-03-01 12:00+02:00") == datetime(2024, 3, 1, 10, tzinfo=UTC)
    for bad in ("1.234,5", "12€", "nan"):
        with pytest.raises(ValueError, match="amount"):
            importer.parse_amount(bad)


def test_cli_import_reports_and_json(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    app = typer.Typer()

    @app.command()
    def noop() -> None:  # a second command keeps Typer in group mode
        """Nothing."""

    cli.register(app, lambda: load_settings(_env_file=None, data_dir=data_dir))
    runner = CliRunner()
    customers = write(tmp_path, "c.csv", CUSTOMERS)
    result = runner.invoke(app, ["import", "customers", str(customers), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Would import c.csv: 3 new, 0 updated, 0 already up to date, 0 bad row(s)." in (
        result.output
    )
    result = runner.invoke(app, ["import", "customers", str(customers), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload == {
        "kind": "customers",
        "dry_run": False,
        "imported": 3,
        "updated": 0,
        "skipped": 0,
        "failed": 0,
        "errors": [],
    }
    tx = write(tmp_path, "t.csv", TRANSACTIONS)
    result = runner.invoke(app, ["import", "transactions", str(tx)])
    assert result.exit_code == 0, result.output
    assert "3 new, 0 updated, 0 already up to date, 4 bad row(s)" in result.output
    assert "line 4: unknown customer C9 (import customers first)" in result.output
    result = runner.invoke(app, ["import", "customers", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2
    assert "is not a file" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["import", "customers", str(customers), "--map", "bogus=X"])
    assert result.exit_code == 2
    assert "unknown field(s) bogus" in result.output
