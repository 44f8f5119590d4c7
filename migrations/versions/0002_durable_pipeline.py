"""durable pipeline: inbox, outbox, staff chat moves; invariants as constraints

* ``inbox_updates``: every Telegram update, stored before Telegram is told it arrived.
* ``outbox``: every effect (a send, an edit, a topic), stored with the state change.
* ``staff_chat_moves``: the staff chat upgraded to a supergroup (``migrate_to_chat_id``).
* ``tickets.is_current`` with a partial unique index: one ticket takes a customer's messages.
* a partial unique index on inbound messages: one row per Telegram message.
* ``customers.unreachable_at``: Telegram refused to deliver (the customer blocked the bot).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE_SQL = "status IN ('open', 'pending', 'escalated')"
INBOUND_SQL = "direction = 'in' AND customer_message_id IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "inbox_updates",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_inbox_updates")),
    )
    op.create_index(
        "ix_inbox_pending",
        "inbox_updates",
        ["update_id"],
        postgresql_where=sa.text("done_at IS NULL"),
        sqlite_where=sa.text("done_at IS NULL"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lane", sa.String(length=16), nullable=False),
        sa.Column("destination", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed')", name=op.f("ck_outbox_status")
        ),
        sa.CheckConstraint("lane IN ('customer', 'staff')", name=op.f("ck_outbox_lane")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "lane", "id"])
    op.create_index("ix_outbox_destination", "outbox", ["destination", "status", "id"])
    op.create_table(
        "staff_chat_moves",
        sa.Column("old_chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("new_chat_id", sa.BigInteger(), nullable=False),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("old_chat_id", name=op.f("pk_staff_chat_moves")),
    )

    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("unreachable_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(
            sa.Column("is_current", sa.Boolean(), nullable=False, server_default=sa.false())
        )

    # The customer's newest active ticket is the one that takes their messages.
    op.execute(
        sa.text(
            """
            UPDATE tickets SET is_current = TRUE
            WHERE status IN ('open', 'pending', 'escalated') AND id = (
                SELECT t2.id FROM tickets t2
                WHERE t2.customer_id = tickets.customer_id
                  AND t2.status IN ('open', 'pending', 'escalated')
                ORDER BY t2.created_at DESC, t2.id DESC LIMIT 1
            )
            """
        )
    )
    with op.batch_alter_table("tickets") as batch:
        batch.create_check_constraint(
            "current_is_active", sa.text(f"NOT is_current OR {ACTIVE_SQL}")
        )
    op.create_index(
        "uq_tickets_current_per_customer",
        "tickets",
        ["customer_id"],
        unique=True,
        sqlite_where=sa.text("is_current"),
        postgresql_where=sa.text("is_current"),
    )

    # The same Telegram message stored twice (an update handled twice): keep the first row.
    op.execute(
        sa.text(
            """
            DELETE FROM messages
            WHERE direction = 'in' AND customer_message_id IS NOT NULL AND id NOT IN (
                SELECT MIN(m2.id) FROM messages m2
                WHERE m2.direction = 'in' AND m2.customer_message_id IS NOT NULL
                GROUP BY m2.customer_chat_id, m2.customer_message_id
            )
            """
        )
    )
    op.create_index(
        "uq_messages_inbound_telegram",
        "messages",
        ["customer_chat_id", "customer_message_id"],
        unique=True,
        sqlite_where=sa.text(INBOUND_SQL),
        postgresql_where=sa.text(INBOUND_SQL),
    )


def downgrade() -> None:
    op.drop_index("uq_messages_inbound_telegram", table_name="messages")
    op.drop_index("uq_tickets_current_per_customer", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint("ck_tickets_current_is_active", type_="check")
        batch.drop_column("is_current")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("unreachable_at")
    op.drop_table("staff_chat_moves")
    op.drop_index("ix_outbox_destination", table_name="outbox")
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_inbox_pending", table_name="inbox_updates")
    op.drop_table("inbox_updates")
