"""Kefu's composition root: load Settings, build things, run a Typer command.

``python main.py COMMAND`` is the same as the installed ``kefu COMMAND``; ``run`` is the default.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from settings import Settings, load_settings

app = typer.Typer(
    name="kefu",
    help="Kefu (客服): a customer-support assistant that lives in Telegram.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
err = Console(stderr=True)

BOTFATHER_HELP = """\
Kefu needs a Telegram bot token to run.

  1. Open Telegram, talk to @BotFather and send /newbot; it gives you a token.
  2. Set it in the environment or in a .env file in the directory you start Kefu from:

       KEFU_TELEGRAM_TOKEN=123456789:AA...

Try Kefu without Telegram: python main.py console"""


def settings_or_exit() -> Settings:
    """Load the configuration; bad values end the command with a plain message, not a traceback."""
    try:
        return load_settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = "KEFU_" + "_".join(str(p) for p in error["loc"]).upper()
            err.print(f"[red]Configuration error[/red] in {field}: {error['msg']}")
        raise typer.Exit(code=2) from None


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context) -> None:
    """Run the bot when no command is given."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(run)


@app.command()
def run(
    webhook: Annotated[
        bool,
        typer.Option(
            "--webhook",
            help="Receive updates on KEFU_WEBHOOK_URL instead of long polling.",
        ),
    ] = False,
) -> None:
    """Run the Telegram bot (long polling by default). Brings the database schema up to date."""
    settings = settings_or_exit()
    if settings.telegram_token is None or not settings.telegram_token.get_secret_value().strip():
        err.print(BOTFATHER_HELP)
        raise typer.Exit(code=2)
    if webhook and not settings.webhook_url:
        err.print(
            "Webhook mode needs KEFU_WEBHOOK_URL (for example https://support.example.com/tg)."
        )
        raise typer.Exit(code=2)
    from bot import logs
    from bot.runtime import serve
    from crm.migrate import upgrade

    logs.configure(settings.log_level, secrets=(settings.telegram_token.get_secret_value(),))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    status = asyncio.run(serve(settings, webhook=webhook))
    if status:
        raise typer.Exit(code=status)


@app.command()
def console(
    name: Annotated[str, typer.Option(help="The customer's name.")] = "Console customer",
    user_id: Annotated[int, typer.Option(help="The customer's (pretend) Telegram id.")] = 1,
    language: Annotated[str, typer.Option(help="The customer's language: en or zh.")] = "en",
) -> None:
    """Talk to Kefu in the terminal, without Telegram: you are the customer (and the agent)."""
    settings = settings_or_exit()
    from bot import logs
    from bot.app import build_services
    from bot.console import ConsoleSession, run_console
    from crm.migrate import upgrade

    logs.configure("WARNING")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    services = build_services(settings)
    session = ConsoleSession(services, user_id=user_id, name=name, language=language)
    asyncio.run(run_console(services, session, Console()))


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Bring the database to the newest schema (or to REVISION)."""
    settings = settings_or_exit()
    from crm.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url, revision)
    typer.echo(f"Database is at revision {revision}.")


@db_app.command("current")
def db_current() -> None:
    """Show the database's schema revision."""
    settings = settings_or_exit()
    from crm.migrate import current

    current(settings.resolved_database_url)


def _corrections(settings: Settings) -> list[tuple[str, str]]:
    """Agents' category corrections from the database, for ``train --from-corrections``."""
    from crm.corrections import load_examples
    from crm.migrate import upgrade

    upgrade(settings.resolved_database_url)
    return load_examples(settings.resolved_database_url)


def _register_domain_commands() -> None:
    from bot import digest_cli
    from crm import cli as crm_cli
    from nlp import cli as nlp_cli

    nlp_cli.register(app, settings_or_exit, _corrections)
    digest_cli.register(app, settings_or_exit)
    crm_cli.register(app, settings_or_exit)


_register_domain_commands()


def cli() -> None:
    """Console-script entry point (``kefu``)."""
    app()


if __name__ == "__main__":
    cli()
