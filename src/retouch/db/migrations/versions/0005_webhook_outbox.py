"""webhook outbox

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("webhook_status", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("webhook_delivery_id", sa.String(length=36), nullable=True))
        batch.add_column(
            sa.Column("webhook_locked_until", sa.DateTime(timezone=True), nullable=True)
        )
        batch.create_index("ix_jobs_webhook_status", ["webhook_status"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_webhook_status")
        batch.drop_column("webhook_locked_until")
        batch.drop_column("webhook_delivery_id")
        batch.drop_column("webhook_status")
