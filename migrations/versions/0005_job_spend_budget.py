"""batch jobs: a spend cap and the estimated spend of its admitted escalations; items: actual escalation cost

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_spend", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("estimated_spend", sa.Float(), nullable=True))
    with op.batch_alter_table("job_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("escalation_cost", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_items", schema=None) as batch_op:
        batch_op.drop_column("escalation_cost")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("estimated_spend")
        batch_op.drop_column("max_spend")
