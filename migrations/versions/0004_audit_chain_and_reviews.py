"""tamper-evident audit ledger (audit_log, audit_chain_head), human reviews, attempts.redactions

Runs already in the store get one `run.import` ledger entry each (their state at upgrade time),
so `cascade audit verify` passes right after the upgrade and catches later edits.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64  # = orchestrator.audit.chain.GENESIS_HASH


def upgrade() -> None:
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('redactions', sa.JSON(), nullable=True))

    op.create_table('reviews',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('reviewer', sa.String(length=128), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id')
    )
    op.create_table('audit_log',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_run_id'), ['run_id'], unique=False)

    head = op.create_table('audit_chain_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.CheckConstraint('id = 1', name='ck_audit_chain_head_one_row'),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS_HASH}])
    _import_existing_runs()


def _import_existing_runs(batch: int = 500) -> None:
    """One ledger entry per run already stored, from the tables as they are at this revision."""
    from orchestrator.audit.chain import append_run_entries, lock_head

    connection = op.get_bind()
    meta = sa.MetaData()
    tables = tuple(sa.Table(name, meta, autoload_with=connection) for name in ("runs", "attempts", "reviews"))
    runs = tables[0]
    head = lock_head(connection)
    last = ""
    while True:
        ids = list(connection.scalars(sa.select(runs.c.id).where(runs.c.id > last).order_by(runs.c.id).limit(batch)))
        if not ids:
            return
        head = append_run_entries(connection, ids, "run.import", head, tables)
        last = ids[-1]


def downgrade() -> None:
    op.drop_table('audit_chain_head')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_run_id'))

    op.drop_table('audit_log')
    op.drop_table('reviews')
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.drop_column('redactions')
