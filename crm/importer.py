"""Importing the business's customers and transactions from CSV files.

``python main.py import customers FILE.csv`` and ``import transactions FILE.csv`` (columns in
``docs/IMPORT.md``). The file is read as a stream; each row is checked and the good rows are
written in batches, all inside the caller's one transaction: the caller commits at the end, so an
exception (or ``--dry-run``) leaves nothing behind. Bad rows are reported with their line number
in the file (the header is line 1) and a reason; they do not stop the good rows.

Re-importing updates instead of duplicating: customers are matched by external id, transactions
by (customer, transaction id), or by (customer, date, amount, product) when the file has no
transaction ids. The report counts new rows (``imported``), changed rows (``updated``) and rows
that were already up to date (``skipped``).

Services only flush; nothing here commits or knows about Telegram.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm.errors import KefuError
from crm.linking import merge_customers, normalize_phone, normalize_username, phones_match
from crm.models import Customer, Transaction

#: Rows checked and written together (one query round per batch).
BATCH_SIZE = 1000
#: At most this many row errors are kept in the report (all are counted).
MAX_REPORTED_ERRORS = 1000

Progress = Callable[[int, int], None]
"""``progress(bytes_read, file_size)``; called while the file is read."""

CUSTOMER_FIELDS: dict[str, tuple[str, ...]] = {
    "external_id": ("external_id", "id", "customer_id", "customerid", "customer_external_id"),
    "name": ("name", "full_name", "customer_name"),
    "first_name": ("first_name", "firstname", "given_name"),
    "last_name": ("last_name", "lastname", "surname", "family_name"),
    "email": ("email", "e_mail", "mail", "email_address"),
    "phone": ("phone", "phone_number", "mobile", "tel", "telephone"),
    "telegram": ("telegram",),
    "telegram_id": ("telegram_id", "telegram_user_id", "tg_id"),
    "telegram_username": ("telegram_username", "username", "tg_username"),
    "created_at": ("created_at", "created", "created_date", "signup_date", "customer_since"),
    "link_code": ("link_code", "code"),
    "language": ("language", "lang"),
    "tags": ("tags",),
}
CUSTOMER_REQUIRED = ("external_id",)

TRANSACTION_FIELDS: dict[str, tuple[str, ...]] = {
    "customer_external_id": (
        "customer_external_id",
        "customer_id",
        "customerid",
        "customer",
    ),
    "external_id": ("external_id", "transaction_id", "id", "order_id", "order"),
    "occurred_at": ("date", "occurred_at", "datetime", "timestamp", "order_date"),
    "amount": ("amount", "total", "value", "price"),
    "currency": ("currency",),
    "product": ("product", "item", "sku"),
    "category": ("category",),
    "status": ("status",),
}
TRANSACTION_REQUIRED = ("customer_external_id", "occurred_at", "amount")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_SLASHED_ISO = re.compile(r"^\d{4}/\d{1,2}/\d{1,2}")
_MAX_AMOUNT = Decimal("1e12")
_CENT = Decimal("0.01")


class ImportFileError(KefuError):
    """The file as a whole cannot be imported (missing column, not CSV, not UTF-8, ...)."""

    code = "import_file_error"


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    reason: str


@dataclass(slots=True)
class ImportReport:
    imported: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0  # every bad row; ``errors`` keeps the first MAX_REPORTED_ERRORS

    def add_error(self, line: int, reason: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(RowError(line, reason))

    @property
    def good(self) -> int:
        return self.imported + self.updated + self.skipped

    def as_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "updated": self.updated,
            "skipped": self.skipped,
            "failed": self.error_count,
            "errors": [{"line": e.line, "reason": e.reason} for e in self.errors],
        }


class _RowProblem(ValueError):
    """A reason why one row cannot be imported."""


# --------------------------------------------------------------------------------------
# Reading the file
# --------------------------------------------------------------------------------------


def parse_mapping(spec: str | None) -> dict[str, str]:
    """``"email=E-Mail,phone=Tel"`` -> ``{"email": "E-Mail", "phone": "Tel"}``."""
    mapping: dict[str, str] = {}
    if not spec:
        return mapping
    for part in spec.split(","):
        if not part.strip():
            continue
        field_name, sep, header = part.partition("=")
        if not sep or not field_name.strip() or not header.strip():
            raise ImportFileError(f"--map expects FIELD=HEADER pairs, got {part.strip()!r}")
        mapping[_norm_header(field_name)] = header.strip()
    return mapping


def _norm_header(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")


class _CountingReader(io.RawIOBase):
    def __init__(self, raw: BinaryIO, progress: Progress | None, total: int) -> None:
        self._raw = raw
        self._progress = progress
        self._total = total
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.read_bytes += n
        if self._progress is not None:
            self._progress(self.read_bytes, self._total)
        return n


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    values: dict[str, str]  # canonical field -> raw cell (stripped)
    extra: dict[str, str]  # other columns (original header) -> raw cell


def _resolve_columns(
    headers: Sequence[str],
    fields: Mapping[str, tuple[str, ...]],
    required: Sequence[str],
    mapping: Mapping[str, str],
) -> tuple[dict[str, int], dict[str, int]]:
    """Column index of each known field (and of every other column, by original header)."""
    stripped = [h.strip() for h in headers]
    if len(set(stripped)) != len(stripped):
        dupes = sorted({h for h in stripped if stripped.count(h) > 1})
        raise ImportFileError(f"the header repeats column(s): {', '.join(dupes)}")
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ImportFileError(
            f"--map names unknown field(s) {', '.join(unknown)}; known: {', '.join(fields)}"
        )
    normalized = {_norm_header(h): i for i, h in enumerate(stripped)}
    exact = {h: i for i, h in enumerate(stripped)}
    known: dict[str, int] = {}
    for name, header in mapping.items():
        index = exact.get(header, normalized.get(_norm_header(header)))
        if index is None:
            raise ImportFileError(f"--map: the file has no column {header!r}")
        known[name] = index
    taken = set(known.values())
    for name, aliases in fields.items():
        if name in known:
            continue
        for alias in aliases:
            index = normalized.get(alias)
            if index is not None and index not in taken:
                known[name] = index
                taken.add(index)
                break
    missing = [name for name in required if name not in known]
    if missing:
        raise ImportFileError(
            f"the file has no {' / '.join(missing)} column (found: {', '.join(stripped)}); "
            "name the column with --map FIELD=HEADER"
        )
    extra = {h: i for i, h in enumerate(stripped) if i not in taken and h}
    return known, extra


def _read_rows(
    path: Path,
    fields: Mapping[str, tuple[str, ...]],
    required: Sequence[str],
    mapping: Mapping[str, str],
    report: ImportReport,
    progress: Progress | None,
) -> Iterator[_Row]:
    """Stream the CSV file: one ``_Row`` per data row; malformed rows go to the report."""
    try:
        total = path.stat().st_size
        raw = path.open("rb")
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with raw:
        head = raw.read(65536)
        raw.seek(0)
        try:
            sample = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
        except UnicodeDecodeError as exc:
            raise ImportFileError(f"{path.name} is not UTF-8 text (save it as CSV UTF-8)") from exc
        first_line = sample.split("\n", 1)[0]
        delimiter = max(",;\t|", key=first_line.count)
        if first_line.count(delimiter) == 0:
            delimiter = ","
        counting = _CountingReader(raw, progress, total)
        text = io.TextIOWrapper(
            io.BufferedReader(counting), encoding="utf-8-sig", errors="strict", newline=""
        )
        reader = csv.reader(text, delimiter=delimiter)
        line = 1
        try:
            headers = next(reader, None)
            if not headers or not any(h.strip() for h in headers):
                raise ImportFileError(f"{path.name} is empty (no header row)")
            known, extra = _resolve_columns(headers, fields, required, mapping)
            width = len(headers)
            while True:
                line = reader.line_num + 1
                cells = next(reader, None)
                if cells is None:
                    break
                if not cells or not any(c.strip() for c in cells):
                    continue
                if len(cells) != width:
                    report.add_error(line, f"expected {width} fields, found {len(cells)}")
                    continue
                values = {name: cells[i].strip() for name, i in known.items()}
                extras = {h: cells[i].strip() for h, i in extra.items() if cells[i].strip()}
                yield _Row(line, values, extras)
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                f"{path.name} is not UTF-8 text near line {line} (save it as CSV UTF-8)"
            ) from exc
        except csv.Error as exc:
            raise ImportFileError(f"line {line}: the file is not valid CSV ({exc})") from exc
        if progress is not None:
            progress(total, total)


def _batches(rows: Iterator[_Row], size: int) -> Iterator[list[_Row]]:
    batch: list[_Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# --------------------------------------------------------------------------------------
# Cell parsing
# --------------------------------------------------------------------------------------


def parse_datetime(raw: str, tz: tzinfo = UTC) -> datetime:
    """ISO 8601 date or date-time (``2024-03-01``, ``2024-03-01 14:30``, with an offset or ``Z``).

    ``2024/03/01`` is accepted too. Times without an offset are in ``tz``.
    """
    text = raw.strip()
    if _SLASHED_ISO.match(text):
        text = text.replace("/", "-", 2)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _RowProblem(f"date {raw!r} is not YYYY-MM-DD[ HH:MM[:SS]]") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def parse_amount(raw: str) -> Decimal:
    text = raw.strip().replace(" ", "").replace("\u00a0", "")
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _RowProblem(f"amount {raw!r} is not a number (use a dot for decimals)") from None
    if not value.is_finite() or abs(value) >= _MAX_AMOUNT:
        raise _RowProblem(f"amount {raw!r} is out of range")
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def _text(values: Mapping[str, str], name: str, limit: int) -> str | None:
    value = values.get(name, "")
    if not value:
        return None
    if len(value) > limit:
        raise _RowProblem(f"{name.replace('_', ' ')} is longer than {limit} characters")
    return value


# --------------------------------------------------------------------------------------
# Customers
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _CustomerRow:
    line: int
    external_id: str
    fields: dict[str, Any]  # Customer column -> value (only what the file gives)
    attributes: dict[str, str]
    tags: list[str] | None


def _customer_row(row: _Row, tz: tzinfo) -> _CustomerRow:
    v = row.values
    external_id = _text(v, "external_id", 128)
    if external_id is None:
        raise _RowProblem("external id is empty")
    fields: dict[str, Any] = {}
    first = _text(v, "first_name", 256)
    last = _text(v, "last_name", 256)
    name = _text(v, "name", 256)
    if first or last:
        fields["first_name"], fields["last_name"] = first or "", last
    elif name:
        fields["first_name"], fields["last_name"] = name, None
    email = _text(v, "email", 320)
    if email is not None:
        if not _EMAIL.match(email):
            raise _RowProblem(f"email {email!r} is not an email address")
        fields["email"] = email.lower()
    phone_raw = v.get("phone", "")
    if phone_raw:
        phone = normalize_phone(phone_raw)
        if phone is None:
            raise _RowProblem(f"phone {phone_raw!r} is not a phone number (7 to 15 digits)")
        fields["phone"] = phone
    telegram = v.get("telegram", "")
    tg_id_raw = v.get("telegram_id", "") or (telegram if telegram.lstrip("-").isdigit() else "")
    tg_user_raw = v.get("telegram_username", "") or (telegram if not tg_id_raw else "")
    if tg_id_raw:
        try:
            tg_id = int(tg_id_raw)
        except ValueError:
            raise _RowProblem(f"Telegram id {tg_id_raw!r} is not a number") from None
        if not 0 < tg_id < 2**52:
            raise _RowProblem(f"Telegram id {tg_id_raw!r} is out of range")
        fields["telegram_user_id"] = tg_id
    if tg_user_raw:
        username = normalize_username(tg_user_raw)
        if username is None:
            raise _RowProblem(f"Telegram username {tg_user_raw!r} is not valid")
        fields["telegram_username"] = username.lower()  # Telegram usernames ignore case
    created = v.get("created_at", "")
    if created:
        fields["created_at"] = parse_datetime(created, tz)
    code = _text(v, "link_code", 64)
    if code is not None:
        fields["link_code"] = code
    language = _text(v, "language", 8)
    if language is not None:
        fields["language"] = language.lower()
    tags_raw = v.get("tags", "")
    tags = [t.strip() for t in re.split(r"[;|]", tags_raw) if t.strip()] if tags_raw else None
    return _CustomerRow(row.line, external_id, fields, dict(row.extra), tags)


@dataclass(slots=True)
class _TelegramOnly:
    """Customers known from Telegram only (no external id): candidates for linking on import."""

    by_username: dict[str, list[int]]
    phones: list[tuple[str, int]]
    claimed: dict[int, str] = field(default_factory=dict)  # merged into -> external id

    def claim(self, customer_id: int, external_id: str) -> None:
        """This Telegram row is merged into the record ``external_id``: never match it again."""
        self.claimed[customer_id] = external_id
        for ids in self.by_username.values():
            if customer_id in ids:
                ids.remove(customer_id)
        self.phones = [(p, i) for p, i in self.phones if i != customer_id]

    def match(self, *, username: str | None, phone: str | None) -> int | None:
        """The one Telegram-only customer with this username, else with this phone."""
        if username:
            ids = self.by_username.get(username.lower(), [])
            if len(ids) == 1:
                return ids[0]
        if phone:
            ids = sorted({i for p, i in self.phones if phones_match(p, phone)})
            if len(ids) == 1:
                return ids[0]
        return None


async def _telegram_only(session: AsyncSession) -> _TelegramOnly:
    result = await session.execute(
        select(Customer.id, Customer.telegram_username, Customer.phone).where(
            Customer.external_id.is_(None), Customer.telegram_user_id.is_not(None)
        )
    )
    by_username: dict[str, list[int]] = {}
    phones: list[tuple[str, int]] = []
    for customer_id, username, phone in result:
        if username:
            by_username.setdefault(username.lower(), []).append(customer_id)
        if phone:
            phones.append((phone, customer_id))
    return _TelegramOnly(by_username, phones)


_CUSTOMER_COMPARED = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "telegram_username",
    "created_at",
    "link_code",
    "language",
)


async def import_customers(
    session: AsyncSession,
    *,
    path: Path,
    mapping: Mapping[str, str] | None = None,
    now: datetime,
    tz: tzinfo = UTC,
    progress: Progress | None = None,
) -> ImportReport:
    """Create or update customers from a CSV file (see ``docs/IMPORT.md``).

    Columns other than the documented ones are kept in ``Customer.attributes``. A customer who
    already wrote to the bot is linked when the file gives their Telegram id, @username or phone.
    """
    report = ImportReport()
    telegram_only = await _telegram_only(session)
    seen: dict[str, dict[object, int]] = {
        "external_id": {},
        "telegram_user_id": {},
        "link_code": {},
    }
    rows = _read_rows(path, CUSTOMER_FIELDS, CUSTOMER_REQUIRED, mapping or {}, report, progress)
    for batch in _batches(rows, BATCH_SIZE):
        parsed: list[_CustomerRow] = []
        for row in batch:
            try:
                item = _customer_row(row, tz)
                keys = {
                    "external_id": item.external_id,
                    "telegram_user_id": item.fields.get("telegram_user_id"),
                    "link_code": (item.fields.get("link_code") or "").upper() or None,
                }
                for key, value in keys.items():
                    if value is not None and value in seen[key]:
                        label = key.replace("_", " ").replace("user ", "")
                        raise _RowProblem(f"{label} {value} repeats line {seen[key][value]}")
                for key, value in keys.items():
                    if value is not None:
                        seen[key][value] = row.line
            except _RowProblem as exc:
                report.add_error(row.line, str(exc))
                continue
            parsed.append(item)
        await _write_customers(session, parsed, telegram_only, report, now)
    report.errors.sort(key=lambda e: e.line)
    return report


async def _write_customers(
    session: AsyncSession,
    rows: list[_CustomerRow],
    telegram_only: _TelegramOnly,
    report: ImportReport,
    now: datetime,
) -> None:
    if not rows:
        return
    existing = {
        c.external_id: c
        for c in (
            await session.execute(
                select(Customer).where(Customer.external_id.in_([r.external_id for r in rows]))
            )
        ).scalars()
    }
    tg_ids = [r.fields["telegram_user_id"] for r in rows if "telegram_user_id" in r.fields]
    tg_owners: dict[int, tuple[int, str | None]] = {}
    if tg_ids:
        result = await session.execute(
            select(Customer.telegram_user_id, Customer.id, Customer.external_id).where(
                Customer.telegram_user_id.in_(tg_ids)
            )
        )
        tg_owners = {int(t): (i, e) for t, i, e in result if t is not None}
    codes = [r.fields["link_code"].upper() for r in rows if "link_code" in r.fields]
    code_owners: dict[str, str | None] = {}
    if codes:
        result = await session.execute(
            select(func.upper(Customer.link_code), Customer.external_id).where(
                func.upper(Customer.link_code).in_(codes)
            )
        )
        code_owners = {str(row[0]): (str(row[1]) if row[1] is not None else None) for row in result}

    pending: list[tuple[_CustomerRow, Customer, bool, int | None]] = []
    for row in rows:
        customer = existing.get(row.external_id)
        fields = dict(row.fields)
        merge_from: int | None = None
        tg_id = fields.get("telegram_user_id")
        if tg_id is not None:
            owner = tg_owners.get(tg_id)
            if owner is not None and owner[1] is not None and owner[1] != row.external_id:
                report.add_error(
                    row.line, f"Telegram id {tg_id} already belongs to customer {owner[1]}"
                )
                continue
            if (
                customer is not None
                and customer.telegram_user_id is not None
                and customer.telegram_user_id != tg_id
            ):
                report.add_error(
                    row.line,
                    f"customer {row.external_id} is already linked to another Telegram account",
                )
                continue
            if owner is not None and owner[1] is None:
                merge_from = owner[0]  # the Telegram row of this person: merged below
                del fields["telegram_user_id"]
        code = fields.get("link_code")
        if code is not None:
            code_owner = code_owners.get(code.upper(), row.external_id)
            if code_owner != row.external_id:
                report.add_error(
                    row.line, f"link code {code} already belongs to customer {code_owner}"
                )
                continue
        if merge_from is not None and merge_from in telegram_only.claimed:
            report.add_error(
                row.line,
                f"Telegram id {tg_id} already belongs to customer "
                f"{telegram_only.claimed[merge_from]}",
            )
            continue
        if (
            merge_from is None
            and tg_id is None
            and (customer is None or customer.telegram_user_id is None)
        ):
            merge_from = telegram_only.match(
                username=fields.get("telegram_username", customer and customer.telegram_username),
                phone=fields.get("phone", customer and customer.phone),
            )
        if merge_from is not None:
            telegram_only.claim(merge_from, row.external_id)
        is_new = customer is None
        if customer is None:
            customer = Customer(
                external_id=row.external_id,
                first_name="",
                created_at=now,
                tags=[],
                attributes={},
            )
            session.add(customer)
            changed = True
        else:
            changed = False
        for key, value in fields.items():
            if getattr(customer, key) != value:
                setattr(customer, key, value)
                changed = True
        if row.attributes:
            merged = {**customer.attributes, **row.attributes}
            if merged != customer.attributes:
                customer.attributes = merged
                changed = True
        if row.tags is not None and row.tags != customer.tags:
            customer.tags = row.tags
            changed = True
        if is_new:
            report.imported += 1
        elif changed:
            report.updated += 1
        else:
            report.skipped += 1
        pending.append((row, customer, is_new, merge_from))
    await session.flush()

    for _row, customer, _is_new, source in pending:
        if source is not None:
            await merge_customers(session, source_id=source, target_id=customer.id)


# --------------------------------------------------------------------------------------
# Transactions
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _TransactionRow:
    line: int
    customer_external_id: str
    external_id: str | None
    values: dict[str, Any]  # occurred_at, amount, currency, product, category, status


def _transaction_row(row: _Row, tz: tzinfo) -> _TransactionRow:
    v = row.values
    customer = _text(v, "customer_external_id", 128)
    if customer is None:
        raise _RowProblem("customer external id is empty")
    if not v.get("occurred_at"):
        raise _RowProblem("date is empty")
    if not v.get("amount"):
        raise _RowProblem("amount is empty")
    values: dict[str, Any] = {
        "occurred_at": parse_datetime(v["occurred_at"], tz),
        "amount": parse_amount(v["amount"]),
    }
    currency = v.get("currency", "")
    if currency and not _CURRENCY.match(currency):
        raise _RowProblem(f"currency {currency!r} is not a three-letter code such as EUR")
    values["currency"] = currency.upper()
    values["product"] = _text(v, "product", 256)
    values["category"] = _text(v, "category", 128)
    status = _text(v, "status", 32)
    values["status"] = status.lower() if status else None
    return _TransactionRow(row.line, customer, _text(v, "external_id", 128), values)


_TX_COLUMNS = ("occurred_at", "amount", "currency", "product", "category", "status")


def _natural_key(customer_id: int, values: Mapping[str, Any]) -> tuple[object, ...]:
    return (customer_id, values["occurred_at"], values["amount"], values["product"])


async def import_transactions(
    session: AsyncSession,
    *,
    path: Path,
    mapping: Mapping[str, str] | None = None,
    tz: tzinfo = UTC,
    progress: Progress | None = None,
) -> ImportReport:
    """Create or update transactions from a CSV file; customers must be imported first."""
    report = ImportReport()
    customer_ids: dict[str, int | None] = {}
    seen: dict[tuple[object, ...], int] = {}
    rows = _read_rows(
        path, TRANSACTION_FIELDS, TRANSACTION_REQUIRED, mapping or {}, report, progress
    )
    for batch in _batches(rows, BATCH_SIZE):
        parsed: list[_TransactionRow] = []
        for row in batch:
            try:
                parsed.append(_transaction_row(row, tz))
            except _RowProblem as exc:
                report.add_error(row.line, str(exc))
        unknown = sorted({r.customer_external_id for r in parsed} - set(customer_ids))
        if unknown:
            result = await session.execute(
                select(Customer.external_id, Customer.id).where(Customer.external_id.in_(unknown))
            )
            found = {str(e): int(i) for e, i in result}
            for external_id in unknown:
                customer_ids[external_id] = found.get(external_id)
        good: list[tuple[_TransactionRow, int]] = []
        for item in parsed:
            customer_id = customer_ids[item.customer_external_id]
            if customer_id is None:
                report.add_error(
                    item.line,
                    f"unknown customer {item.customer_external_id} (import customers first)",
                )
                continue
            key = (
                (customer_id, "id", item.external_id)
                if item.external_id is not None
                else _natural_key(customer_id, item.values)
            )
            if key in seen:
                what = "transaction id" if item.external_id else "date, amount and product"
                report.add_error(item.line, f"same customer and {what} as line {seen[key]}")
                continue
            seen[key] = item.line
            good.append((item, customer_id))
        await _write_transactions(session, good, report)
    await _customers_exist_since_first_order(session)
    report.errors.sort(key=lambda e: e.line)
    return report


async def _customers_exist_since_first_order(session: AsyncSession) -> None:
    """A customer bought nothing before they existed: a record imported without a created date
    (stamped with the import time) starts at its first transaction instead."""
    first_order = (
        select(func.min(Transaction.occurred_at))
        .where(Transaction.customer_id == Customer.id)
        .scalar_subquery()
    )
    await session.execute(
        update(Customer)
        .where(first_order < Customer.created_at)
        .values(created_at=first_order)
        .execution_options(synchronize_session=False)
    )


async def _write_transactions(
    session: AsyncSession, rows: list[tuple[_TransactionRow, int]], report: ImportReport
) -> None:
    if not rows:
        return
    columns = (Transaction.id, *(getattr(Transaction, c) for c in _TX_COLUMNS))
    customer_ids = sorted({c for _, c in rows})
    by_id: dict[tuple[int, str], Any] = {}
    with_ids = [r.external_id for r, _ in rows if r.external_id is not None]
    if with_ids:
        result = await session.execute(
            select(Transaction.customer_id, Transaction.external_id, *columns).where(
                Transaction.customer_id.in_(customer_ids),
                Transaction.external_id.in_(sorted(set(with_ids))),
            )
        )
        by_id = {(int(r[0]), str(r[1])): r[2:] for r in result}
    by_key: dict[tuple[object, ...], Any] = {}
    dates = sorted({r.values["occurred_at"] for r, _ in rows if r.external_id is None})
    if dates:
        result = await session.execute(
            select(Transaction.customer_id, *columns).where(
                Transaction.customer_id.in_(customer_ids),
                Transaction.external_id.is_(None),
                Transaction.occurred_at.in_(dates),
            )
        )
        for r in result:
            stored = dict(zip(_TX_COLUMNS, r[2:], strict=True))
            by_key[_natural_key(int(r[0]), stored)] = r[1:]
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for item, customer_id in rows:
        if item.external_id is not None:
            current = by_id.get((customer_id, item.external_id))
        else:
            current = by_key.get(_natural_key(customer_id, item.values))
        if current is None:
            inserts.append(
                {"customer_id": customer_id, "external_id": item.external_id, **item.values}
            )
            continue
        stored = dict(zip(_TX_COLUMNS, current[1:], strict=True))
        if all(stored[c] == item.values[c] for c in _TX_COLUMNS):
            report.skipped += 1
        else:
            updates.append({"id": current[0], **item.values})
    if inserts:
        await session.execute(insert(Transaction), inserts)
        report.imported += len(inserts)
    if updates:
        await session.execute(update(Transaction), updates)
        report.updated += len(updates)
    await session.flush()
