"""API access: keys (a hash of each), idempotent POST responses, job webhooks; runs record the key that asked

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("webhook_secret", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("key_id", sa.String(16), primary_key=True),
        sa.Column("idempotency_key", sa.String(255), primary_key=True),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "job_webhooks",
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deliveries", sa.JSON(), nullable=False),
    )
    op.create_index("ix_job_webhooks_state", "job_webhooks", ["state"])
    # Nullable: runs before this revision (and SDK/CLI runs) have no key; the audit chain leaves
    # NULL columns out of its snapshots, so their ledger bodies stay valid.
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("api_key_id", sa.String(16), nullable=True))
        batch_op.create_index("ix_runs_api_key_id", ["api_key_id"])
    with op.batch_alter_table("jobs", schema=None) as batch_op:  # its items' runs record the key too
        batch_op.add_column(sa.Column("api_key_id", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("api_key_id")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_api_key_id")
        batch_op.drop_column("api_key_id")
    op.drop_index("ix_job_webhooks_state", "job_webhooks")
    op.drop_table("job_webhooks")
    op.drop_table("idempotency_keys")
    op.drop_table("api_keys")
