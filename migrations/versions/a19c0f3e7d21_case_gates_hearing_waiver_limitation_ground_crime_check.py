"""case gates: hearing waiver apart from the statement waiver, five-year limitation ground, crime-check facts


- ``hearing_waived``: 行政处罚法 第64条 — a hearing is waived expressly or by the party's conduct,
  never by waiving 陈述申辩. Existing rows keep what they meant: a statement waiver used to close
  the hearing window too, so cases with ``statement_waived`` get ``hearing_waived``.
- ``limitation_ground``: 第36条 — past two years, a decision needs a recorded five-year ground.
- ``crime_checked_facts``: the crime facts the last check ran on; a decision needs a check on the
  final facts. Existing cases whose check ran are given their current facts (the check ran on them).

Revision ID: a19c0f3e7d21
Revises: 642199579eb8
Create Date: 2026-12-08 01:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


revision = 'a19c0f3e7d21'
down_revision = '642199579eb8'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('penalty_case') as batch:
        batch.add_column(sa.Column('limitation_ground', sa.String(length=30), nullable=True,
                                   comment='第36条 five-year ground: life_health or financial safety, with harmful consequences'))
        batch.add_column(sa.Column('hearing_waived', sa.Boolean(), nullable=False, server_default=sa.false(),
                                   comment='hearing waived expressly or by conduct (行政处罚法 第64条第(六)项)'))
        batch.add_column(sa.Column('crime_checked_facts', sa.JSON(), nullable=True,
                                   comment='the crime_facts the last crime check ran on (None: never run)'))
    op.execute("UPDATE penalty_case SET hearing_waived = statement_waived")
    op.execute("UPDATE penalty_case SET crime_checked_facts = crime_facts WHERE id IN "
               "(SELECT case_id FROM case_event WHERE action = 'crime_check')")


def downgrade():
    with op.batch_alter_table('penalty_case') as batch:
        batch.drop_column('crime_checked_facts')
        batch.drop_column('hearing_waived')
        batch.drop_column('limitation_ground')
