"""audit subject index without a foreign key to its entry

The sequencer writes entries and their subjects in one statement and entries are never deleted;
PostgreSQL's per-row key check reused a plan made for an empty log (a sequential scan per row).

Revision ID: 5b1e0c7a9d21
Revises: cf294c477bf1
Create Date: 2026-11-30 10:55:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '5b1e0c7a9d21'
down_revision = 'cf294c477bf1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_subject', schema=None) as batch_op:
        batch_op.drop_constraint('fk_audit_subject_entry_idx_audit_entry', type_='foreignkey')


def downgrade():
    with op.batch_alter_table('audit_subject', schema=None) as batch_op:
        batch_op.create_foreign_key('fk_audit_subject_entry_idx_audit_entry', 'audit_entry', ['entry_idx'], ['idx'])
