"""The ``import`` and ``needs`` commands (added to ``main.py``'s Typer app by :func:`register`).

``python main.py import customers FILE.csv``, ``import transactions FILE.csv``,
``python main.py needs [--top N] [--json]`` and ``needs train [--data FILE ...] [--json]``.
Progress bars go to standard error, so ``--json`` output on standard output stays one JSON object.
Expected problems end with a plain sentence and exit code 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from crm.errors import KefuError
from settings import Settings

T = TypeVar("T")

MapOption = Annotated[
    str | None,
    typer.Option(
        "--map",
        help='Other headers for the fields: "email=E-Mail,phone=Tel" (FIELD=HEADER pairs).',
    ),
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Check and count everything, write nothing.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
FileArgument = Annotated[
    Path, typer.Argument(help="A CSV file (UTF-8, header row).", show_default=False)
]

_STAGES = {
    "features": "Computing features",
    "select": "Comparing models",
    "fit": "Training and calibrating",
}


def _now() -> datetime:
    return datetime.now(UTC)


def register(app: typer.Typer, settings_factory: Callable[[], Settings]) -> None:
    """Add the ``import`` and ``needs`` command groups to ``app``."""
    err = Console(stderr=True, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True)

    import_app = typer.Typer(
        help="Import customers and transactions from CSV files (see docs/IMPORT.md).",
        no_args_is_help=True,
    )
    needs_app = typer.Typer(
        help="Need prediction: who is likely to need help soon, and why.",
        invoke_without_command=True,
    )
    app.add_typer(import_app, name="import")
    app.add_typer(needs_app, name="needs")

    def fail(message: str) -> typer.Exit:
        err.print(f"[red]Error:[/red] {escape(message)}")
        return typer.Exit(code=2)

    def prepare() -> Settings:
        settings = settings_factory()
        from crm.migrate import upgrade

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade(settings.resolved_database_url)
        return settings

    def run_db(
        settings: Settings,
        work: Callable[[AsyncSession], Awaitable[T]],
        *,
        commit: bool = True,
    ) -> T:
        async def main() -> T:
            from crm.db import create_engine, create_session_factory

            engine = create_engine(settings.resolved_database_url)
            try:
                factory = create_session_factory(engine)
                async with factory() as session:
                    try:
                        result = await work(session)
                        if commit:
                            await session.commit()
                        else:
                            await session.rollback()
                        return result
                    except BaseException:
                        await session.rollback()
                        raise
            finally:
                await engine.dispose()

        try:
            return asyncio.run(main())
        except KefuError as exc:
            raise fail(str(exc)) from None

    @contextmanager
    def progress_bar(*, quiet: bool, bytes_mode: bool = False) -> Iterator[Progress]:
        columns: list[Any] = [
            TextColumn("{task.description}"),
            BarColumn(),
            TransferSpeedColumn() if bytes_mode else MofNCompleteColumn(),
            TimeElapsedColumn(),
        ]
        with Progress(*columns, console=err, transient=True, disable=quiet) as bar:
            yield bar

    def import_command(
        kind: str, path: Path, mapping: str | None, dry_run: bool, as_json: bool
    ) -> None:
        from crm import importer

        settings = prepare()
        try:
            columns = importer.parse_mapping(mapping)
        except KefuError as exc:
            raise fail(str(exc)) from None
        if not path.is_file():
            raise fail(f"{path} is not a file")

        with progress_bar(quiet=False, bytes_mode=True) as bar:
            task = bar.add_task(f"Importing {path.name}", total=path.stat().st_size or 1)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total or 1)

            async def work(session: AsyncSession) -> importer.ImportReport:
                if kind == "customers":
                    return await importer.import_customers(
                        session,
                        path=path,
                        mapping=columns,
                        now=_now(),
                        tz=settings.tz,
                        progress=progress,
                    )
                return await importer.import_transactions(
                    session, path=path, mapping=columns, tz=settings.tz, progress=progress
                )

            report = run_db(settings, work, commit=not dry_run)
        if as_json:
            typer.echo(json.dumps({"kind": kind, "dry_run": dry_run, **report.as_dict()}))
            return
        verb = "Would import" if dry_run else "Imported"
        out.print(
            f"{verb} {path.name}: {report.imported} new, {report.updated} updated, "
            f"{report.skipped} already up to date, {report.error_count} bad row(s)."
        )
        for error in report.errors:
            out.print(f"  line {error.line}: {escape(error.reason)}")
        if report.error_count > len(report.errors):
            out.print(f"  ... and {report.error_count - len(report.errors)} more bad rows")
        if dry_run:
            out.print("Dry run: nothing was written.")

    @import_app.command("customers")
    def import_customers(
        file: FileArgument,
        map_: MapOption = None,
        dry_run: DryRunOption = False,
        as_json: JsonOption = False,
    ) -> None:
        """Create or update customers (external id, name, email, phone, Telegram, created date)."""
        import_command("customers", file, map_, dry_run, as_json)

    @import_app.command("transactions")
    def import_transactions(
        file: FileArgument,
        map_: MapOption = None,
        dry_run: DryRunOption = False,
        as_json: JsonOption = False,
    ) -> None:
        """Create or update transactions (customer external id, date, amount, currency, ...)."""
        import_command("transactions", file, map_, dry_run, as_json)

    def training_progress(bar: Progress) -> Callable[[str, int, int], None]:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(_STAGES.get(stage, stage), total=total or 1)
            bar.update(tasks[stage], completed=done, total=total or 1)

        return progress

    @needs_app.command("train")
    def needs_train(
        data: Annotated[
            Path | None,
            typer.Option(
                "--data", help="Learn from a flat customer table (CSV) instead of the database."
            ),
        ] = None,
        label_column: Annotated[
            str | None, typer.Option(help="The table's yes/no label column (e.g. Churn).")
        ] = None,
        id_column: Annotated[
            str | None, typer.Option(help="The table's customer id column (not a feature).")
        ] = None,
        cutoffs: Annotated[
            int, typer.Option(min=1, max=24, help="Past cutoffs (30 days apart) from the database.")
        ] = 4,
        as_json: JsonOption = False,
    ) -> None:
        """Train, compare and calibrate the need model; report hold-out ROC AUC, PR AUC, Brier."""
        from crm import needs

        settings = settings_factory()
        if data is not None and label_column is None:
            raise fail("--data needs --label-column (the yes/no column to predict)")
        if data is None and (label_column or id_column):
            raise fail("--label-column and --id-column only apply with --data FILE")
        with progress_bar(quiet=False) as bar:
            progress = training_progress(bar)
            try:
                if data is not None:
                    if not data.is_file():
                        raise fail(f"{data} is not a file")
                    assert label_column is not None  # noqa: S101
                    result = needs.train_table(
                        data,
                        label_column=label_column,
                        id_column=id_column,
                        models_dir=settings.models_dir,
                        now=_now(),
                        progress=progress,
                    )
                else:
                    settings = prepare()
                    now = _now()

                    async def work(session: AsyncSession) -> Any:
                        return await needs.history_dataset(
                            session, now=now, cutoffs=cutoffs, progress=progress
                        )

                    dataset = run_db(settings, work, commit=False)
                    result = needs.train(
                        dataset, models_dir=settings.models_dir, now=now, progress=progress
                    )
            except KefuError as exc:
                raise fail(str(exc)) from None
        if as_json:
            typer.echo(json.dumps(result.as_dict()))
            return
        m = result.metrics
        out.print(f"Need model {result.version}: {result.model}")
        out.print(
            f"Hold-out ({result.holdout_rows} of {result.rows} rows, {result.positives} positive): "
            f"ROC AUC {m.auc:.3f} · PR AUC {m.pr_auc:.3f} · accuracy {m.accuracy:.3f} · "
            f"Brier {m.brier:.3f}"
        )
        table = Table("candidate", "CV ROC AUC", title="Compared on the training part")
        for row in result.candidates:
            table.add_row(row["model"], f"{row['cv_auc']:.4f}")
        out.print(table)
        out.print(f"Saved to {result.path} ({result.seconds:.1f} s).")

    @needs_app.callback()
    def needs_list(
        ctx: typer.Context,
        top: Annotated[int, typer.Option(min=1, max=1000, help="How many customers.")] = 10,
        include_active: Annotated[
            bool,
            typer.Option(help="Also list customers who have a ticket in progress."),
        ] = False,
        as_json: JsonOption = False,
    ) -> None:
        """List the customers most likely to need help, with what pushes their score up."""
        if ctx.invoked_subcommand is not None:
            return
        from crm import needs

        settings = prepare()
        model = needs.load_current(settings.models_dir)
        if model is None:
            raise fail("no need model yet: run `python main.py needs train` first")
        now = _now()

        async def work(session: AsyncSession) -> tuple[Any, Any]:
            scores = await needs.score(session, model=model, now=now)
            listed = await needs.at_risk(
                session,
                model=model,
                now=now,
                top=top,
                include_active=include_active,
                scores=scores,
            )
            staffing = await needs.forecast(session, model=model, now=now, scores=scores)
            return listed, staffing

        listed, staffing = run_db(settings, work, commit=False)
        if as_json:
            payload = {
                "model": model.version,
                "label": model.label,
                "customers": [
                    {
                        "customer_id": c.customer_id,
                        "external_id": c.external_id,
                        "name": c.name,
                        "probability": round(c.probability, 4),
                        "reasons": [asdict(r) for r in c.reasons],
                    }
                    for c in listed
                ],
                "forecast": asdict(staffing) if staffing is not None else None,
            }
            typer.echo(json.dumps(payload))
            return
        table = Table("customer", "external id", "chance", "why", title=f"Likely: {model.label}")
        for c in listed:
            why = "; ".join(f"{r.feature} {r.value} (typical {r.typical})" for r in c.reasons)
            table.add_row(
                escape(c.name), escape(c.external_id or "—"), f"{c.probability:.0%}", escape(why)
            )
        out.print(table if listed else "No customers to score.")
        if staffing is not None:
            for f in (staffing.day, staffing.week):
                span = "tomorrow" if f.days == 1 else f"in the next {f.days} days"
                out.print(
                    f"Expected customers needing help {span}: {f.expected:.1f} "
                    f"({staffing.level:.0%} interval {f.low}-{f.high})"
                )
