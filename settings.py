"""Kefu's configuration: every ``KEFU_*`` variable, read once into one ``Settings`` object.

Nothing runs at import time; ``main.py`` calls :func:`load_settings` and passes it down.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class RateLimits(StrEnum):
    TELEGRAM = "telegram"
    OFF = "off"


def _split_ids(value: object) -> object:
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace(";", ",").split(",")]
        return [int(p) for p in parts if p]
    if isinstance(value, int):
        return [value]
    return value


class Settings(BaseSettings):
    """All configuration. Environment variables are the field names upper-cased with ``KEFU_``."""

    model_config = SettingsConfigDict(
        env_prefix="KEFU_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,
    )

    telegram_token: SecretStr | None = Field(
        default=None, description="Bot token from @BotFather; required for `run`."
    )
    telegram_api_url: str = Field(
        default="https://api.telegram.org",
        description="Bot API root: requests go to {url}/bot{token}/{method}.",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default is an SQLite file in the data dir."
    )
    data_dir: Path = Field(default=Path("./data"), description="Database, models, exports.")
    staff_chat_id: int | None = Field(
        default=None, description="The agents' supergroup; required for escalation."
    )
    agent_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="User ids allowed to act as agents; empty means members of the staff chat.",
    )
    manager_chat_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="Chats that receive digests and may use manager commands."
    )
    digest_schedule: str = Field(default="0 9 * * *", description="Cron expression for the digest.")
    timezone: str = Field(default="UTC", description="IANA zone for schedules and reports.")
    telegram_rate_limits: RateLimits = Field(
        default=RateLimits.TELEGRAM,
        description="`telegram` keeps Telegram's flood limits; `off` for local test servers.",
    )
    business_hours: str = Field(
        default="",
        description="When agents answer, e.g. 'mon-fri 09:00-18:00'; empty means always.",
    )
    agent_signature: bool = Field(
        default=False, description="Sign agent replies with the agent's first name."
    )
    default_language: str = Field(default="en", description="Language when Telegram gives none.")
    first_response_target_minutes: int = Field(
        default=60, description="First-response target (business minutes) for SLA breaches."
    )
    nlp_pipeline: str | None = Field(
        default=None, description="An installed spaCy pipeline to use instead of spacy.blank."
    )
    order_number_pattern: str = Field(
        default=r"(?<![A-Za-z0-9])(?:[A-Z]{2,4}-?\d{5,12}|#\d{5,12})(?![A-Za-z0-9])",
        description="Regular expression for order numbers.",
    )
    knowledge_base: Path | None = Field(
        default=None,
        description="YAML file of automatic answers per category and language; default: built in.",
    )
    auto_answer: bool = Field(
        default=True, description="Answer from the knowledge base before escalating to agents."
    )
    auto_answer_min_confidence: float = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description="Answer automatically only when the category's confidence reaches this.",
    )
    log_level: str = Field(default="INFO", description="Logging level.")
    webhook_url: str | None = Field(
        default=None,
        description="Public HTTPS URL for webhook mode (`run --webhook`); its path is served.",
    )
    webhook_listen: str = Field(default="127.0.0.1", description="Address the webhook binds.")
    webhook_port: int = Field(default=8443, ge=1, le=65535, description="Webhook port.")
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="X-Telegram-Bot-Api-Secret-Token Telegram must send; generated when unset.",
    )

    @field_validator("agent_ids", "manager_chat_ids", mode="before")
    @classmethod
    def _parse_ids(cls, value: object) -> object:
        return _split_ids(value)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("digest_schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(
                f"not a cron expression (minute hour day month weekday): {exc}"
            ) from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'kefu.db').resolve()}"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"


def load_settings(**overrides: object) -> Settings:
    """Read the environment (and ``.env``) once."""
    return Settings(**overrides)  # type: ignore[arg-type]
