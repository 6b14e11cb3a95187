"""device_key: keys a re-enrolment retired, kept to verify what they signed while valid

A device past its 14-day offline grace period is re-enrolled by a supervisor (``enforce devices
reenrol``, the console's sync page, ``POST /api/v1/devices/<id>/reenrol``). If it comes back with
a new key, the old one moves here with the time it was retired; manifests captured up to then
still verify with it.

Revision ID: 8d3f0a6c2e51
Revises: 5b7e2c91d4a3
Create Date: 2026-12-08 01:05:00.000000

"""
from alembic import op
import sqlalchemy as sa

import server.core.db


# revision identifiers, used by Alembic.
revision = '8d3f0a6c2e51'
down_revision = '5b7e2c91d4a3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'device_key',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('device_id', sa.String(length=36), nullable=False),
        sa.Column('public_key', sa.LargeBinary(length=32), nullable=False, comment='raw Ed25519 public key'),
        sa.Column('retired_at', server.core.db.UTCDateTime(timezone=True), nullable=False,
                  comment='end of its validity: the re-enrolment'),
        sa.Column('retired_by', sa.Integer(), nullable=True, comment='supervisor who re-enrolled'),
        sa.Column('reason', sa.String(length=400), nullable=False),
        sa.CheckConstraint('length(public_key) = 32', name=op.f('ck_device_key_ed25519_key_length')),
        sa.ForeignKeyConstraint(['device_id'], ['device.id'], name=op.f('fk_device_key_device_id_device')),
        sa.ForeignKeyConstraint(['retired_by'], ['user_account.id'],
                                name=op.f('fk_device_key_retired_by_user_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_device_key')),
        sa.UniqueConstraint('public_key', name=op.f('uq_device_key_public_key')),
    )
    op.create_index(op.f('ix_device_key_device_id'), 'device_key', ['device_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_device_key_device_id'), table_name='device_key')
    op.drop_table('device_key')
