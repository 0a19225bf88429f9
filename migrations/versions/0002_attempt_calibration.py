"""attempts record the raw confidence and the calibration artifact used

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("raw_confidence", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("calibration", sa.String(length=256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("calibration")
        batch_op.drop_column("raw_confidence")
