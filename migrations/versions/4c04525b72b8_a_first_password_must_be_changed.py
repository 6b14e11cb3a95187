"""a one-time password must be changed at first sign-in

`enforce setup --org` gives the first administrator a one-time password; the account may not
work until its holder has chosen their own.

Revision ID: 4c04525b72b8
Revises: 642199579eb8
Create Date: 2026-12-08 00:45:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '4c04525b72b8'
down_revision = '642199579eb8'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('must_change_password', sa.Boolean(), nullable=False,
                                      server_default=sa.false(),
                                      comment='the password was issued by someone else (one-time): '
                                              'sign-in asks for a new one first'))


def downgrade():
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_column('must_change_password')
