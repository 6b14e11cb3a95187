"""unit.code: the unit's official short code (文号代字) printed in its document numbers

On-site decision numbers (当场行政处罚决定书, 商环当罚〔2026〕商州-3号) printed the database id of
the unit. They print ``unit.code`` now. Existing units get a code from their region (GB/T 2260)
so that no number is guessed: the first unit of a region (by id) takes the region code, the
next ones the region code with -2, -3, … An administrator replaces them with the real 文号代字.
Numbers already allocated keep their text (they may have been printed).

A unique index, not a column constraint, so that SQLite need not rebuild ``unit``.

Revision ID: 5b7e2c91d4a3
Revises: 4c04525b72b8
Create Date: 2026-12-08 00:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5b7e2c91d4a3'
down_revision = '4c04525b72b8'
branch_labels = None
depends_on = None

unit = sa.table("unit", sa.column("id", sa.Integer), sa.column("region_code", sa.String),
                sa.column("code", sa.String))


def upgrade():
    op.add_column('unit', sa.Column('code', sa.String(length=16), nullable=True,
                                    comment='official short code printed in its document numbers (文号代字), e.g. 商州'))
    bind = op.get_bind()
    seen: dict[str, int] = {}
    for unit_id, region in bind.execute(sa.select(unit.c.id, unit.c.region_code).order_by(unit.c.id)).all():
        seen[region] = seen.get(region, 0) + 1
        code = region if seen[region] == 1 else f"{region}-{seen[region]}"
        bind.execute(unit.update().where(unit.c.id == unit_id).values(code=code))
    op.create_index('ix_unit_code', 'unit', ['code'], unique=True)


def downgrade():
    op.drop_index('ix_unit_code', table_name='unit')
    op.drop_column('unit', 'code')
