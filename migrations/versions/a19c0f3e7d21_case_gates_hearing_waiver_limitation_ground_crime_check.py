"""case gates: hearing waiver, five-year limitation ground, crime-check facts, approved taking of items


- ``hearing_waived``: 行政处罚法 第64条 — a hearing is waived expressly or by the party's conduct,
  never by waiving 陈述申辩. Existing rows keep what they meant: a statement waiver used to close
  the hearing window too, so cases with ``statement_waived`` get ``hearing_waived``.
- ``limitation_ground``: 第36条 — past two years, a decision needs a recorded five-year ground.
- ``crime_checked_facts``: the crime facts the last check ran on; a decision needs a check on the
  final facts. Existing cases whose check ran are given their current facts (the check ran on them).
- ``investigative_act``: the head's approval of 先行登记保存 / 查封、扣押, the decision's number and
  how and when the items were dealt with (行政处罚法 第56条; 行政强制法 第24、25条).

Revision ID: a19c0f3e7d21
Revises: a7c3e91f5d20
Create Date: 2026-12-08 01:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


revision = 'a19c0f3e7d21'
down_revision = 'a7c3e91f5d20'
branch_labels = None
depends_on = None


def upgrade():
    # No batch mode on SQLite: it reflects the tables, and user_account's expression index
    # (lower(username)) is one SQLAlchemy cannot reflect. Plain ADD COLUMN does all that is needed.
    op.add_column('penalty_case', sa.Column('limitation_ground', sa.String(length=30), nullable=True,
                                            comment='第36条 five-year ground: life_health or financial safety, with harmful consequences'))
    op.add_column('penalty_case', sa.Column('hearing_waived', sa.Boolean(), nullable=False, server_default=sa.false(),
                                            comment='hearing waived expressly or by conduct (行政处罚法 第64条第(六)项)'))
    op.add_column('penalty_case', sa.Column('crime_checked_facts', sa.JSON(), nullable=True,
                                            comment='the crime_facts the last crime check ran on (None: never run)'))
    approval_comment = 'the head who approved taking items (行政处罚法 第56条; 行政强制法 第18条)'
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("ALTER TABLE investigative_act ADD COLUMN approved_by_id INTEGER CONSTRAINT "
                   "fk_investigative_act_approved_by_id_user_account REFERENCES user_account (id)")
    else:
        op.add_column('investigative_act', sa.Column('approved_by_id', sa.Integer(), nullable=True,
                                                     comment=approval_comment))
        op.create_foreign_key('fk_investigative_act_approved_by_id_user_account', 'investigative_act',
                              'user_account', ['approved_by_id'], ['id'])
        op.alter_column('investigative_act', 'kind', existing_type=sa.String(length=30), existing_nullable=False,
                        comment='inquiry | on_site | sampling | survey | preservation | seizure',
                        existing_comment='inquiry | on_site | sampling | survey | preservation')
    op.add_column('investigative_act', sa.Column('document_number', sa.String(length=80), nullable=True,
                                                 comment='查封、扣押决定书 number (行政强制法 第24条)'))
    op.add_column('investigative_act', sa.Column('items_decided_on', sa.Date(), nullable=True,
                                                 comment='day the taken items were dealt with or released'))
    op.add_column('investigative_act', sa.Column('items_decision', sa.String(length=400), nullable=True,
                                                 comment='处理决定 / 解除查封、扣押'))
    op.execute("UPDATE penalty_case SET hearing_waived = statement_waived")
    op.execute("UPDATE penalty_case SET crime_checked_facts = crime_facts WHERE id IN "
               "(SELECT case_id FROM case_event WHERE action = 'crime_check')")


def downgrade():
    if op.get_bind().dialect.name != 'sqlite':
        op.drop_constraint('fk_investigative_act_approved_by_id_user_account', 'investigative_act', type_='foreignkey')
        op.alter_column('investigative_act', 'kind', existing_type=sa.String(length=30), existing_nullable=False,
                        comment='inquiry | on_site | sampling | survey | preservation',
                        existing_comment='inquiry | on_site | sampling | survey | preservation | seizure')
    for column in ('items_decision', 'items_decided_on', 'document_number', 'approved_by_id'):
        op.drop_column('investigative_act', column)
    for column in ('crime_checked_facts', 'hearing_waived', 'limitation_ground'):
        op.drop_column('penalty_case', column)
