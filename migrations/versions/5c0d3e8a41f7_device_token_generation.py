"""device token generation: a reused refresh token ends the device's access tokens too

A device's access tokens carry ``device.token_generation``; presenting an already-used refresh
token bumps it, so the access tokens issued before (valid up to an hour) stop working at the next
request, as the refresh tokens already did. Existing devices start at generation 1, the value an
access token without the claim is read as.

Revision ID: 5c0d3e8a41f7
Revises: a19c0f3e7d21
Create Date: 2026-12-08 00:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5c0d3e8a41f7'
down_revision = 'a19c0f3e7d21'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.add_column(sa.Column('token_generation', sa.Integer(), server_default=sa.text('1'), nullable=False,
                                      comment='bump to end every access token issued so far (a reused refresh token)'))


def downgrade():
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.drop_column('token_generation')
