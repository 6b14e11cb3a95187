"""a one-time password must be changed at first sign-in

`enforce setup --org` gives the first administrator a one-time password; the account may not
work until its holder has chosen their own.

Revision ID: 4c04525b72b8
Revises: 8d3f0b6c2e71
Create Date: 2026-12-08 00:45:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '4c04525b72b8'
down_revision = '8d3f0b6c2e71'
branch_labels = None
depends_on = None


def upgrade():
    # Not batch: a plain ALTER TABLE on SQLite too; recreating user_account would break the foreign
    # keys that point at it once it has rows.
    op.add_column('user_account', sa.Column('must_change_password', sa.Boolean(), nullable=False,
                                            server_default=sa.false(),
                                            comment='the password was issued by someone else (one-time): '
                                                    'sign-in asks for a new one first'))


def downgrade():
    # Not batch either: SQLite (3.35+) drops the column in place.
    op.drop_column('user_account', 'must_change_password')
