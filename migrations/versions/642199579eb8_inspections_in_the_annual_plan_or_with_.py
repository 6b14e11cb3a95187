"""inspections in the annual plan or with an outside-plan reason (DOMAIN-RULES rule 51)

``inspection.plan_id`` names the annual plan a task counts against; ``outside_plan_reason`` says
why a task lies outside it (complaint, non_site_clue, special_campaign, superior_assignment). A
CHECK holds that a task by hand has exactly one of the two and a drawn (random) one never has a
reason.

Existing rows are given what the rule would have asked of them:
- random: the plan of the draw that made it, if the draw had one (else nothing, as now);
- tip (举报核查): 'complaint', a tip check being by its nature outside the plan;
- routine, special, joint: the plan of its unit for the year its window starts in, if that plan
  was approved; otherwise 'superior_assignment', since a supervisor assigned it directly, outside
  any plan. No cap is checked: these visits are history, not requests.

On SQLite the CHECK rides on the new ``plan_id`` column (ALTER TABLE ... ADD COLUMN with column
constraints): rebuilding ``inspection`` in batch mode would drop a table that members, evidence
and sync changes point at. The reason is therefore set first, on every row by hand, and moved to
``plan_id`` where a plan exists in one UPDATE, so the CHECK holds from the moment it exists.

Revision ID: 642199579eb8
Revises: e3c1d7a2b845
Create Date: 2026-11-30 14:29:48.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '642199579eb8'
down_revision = 'e3c1d7a2b845'
branch_labels = None
depends_on = None

CHECK = ("(kind = 'random' AND outside_plan_reason IS NULL) OR "
         "(kind <> 'random' AND (plan_id IS NULL) <> (outside_plan_reason IS NULL))")
REASON_TYPE = sa.Enum('complaint', 'non_site_clue', 'special_campaign', 'superior_assignment',
                      name='outsideplanreason', native_enum=False, length=20)

inspection = sa.table("inspection", sa.column("id", sa.String), sa.column("kind", sa.String),
                      sa.column("unit_id", sa.Integer), sa.column("window_start", sa.Date),
                      sa.column("draw_id", sa.String), sa.column("plan_id", sa.Integer),
                      sa.column("outside_plan_reason", sa.String))
annual_plan = sa.table("annual_plan", sa.column("id", sa.Integer), sa.column("unit_id", sa.Integer),
                       sa.column("year", sa.Integer), sa.column("status", sa.String))
draw = sa.table("draw", sa.column("id", sa.String), sa.column("plan_id", sa.Integer))


def upgrade():
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    op.add_column('inspection', sa.Column('outside_plan_reason', REASON_TYPE, nullable=True,
                                          comment='计划外任务的原因: why it is outside the annual plan'))
    bind.execute(inspection.update().where(inspection.c.kind != 'random').values(
        outside_plan_reason=sa.case((inspection.c.kind == 'tip', 'complaint'), else_='superior_assignment')))
    if sqlite:
        op.execute("ALTER TABLE inspection ADD COLUMN plan_id INTEGER "
                   "CONSTRAINT fk_inspection_plan_id_annual_plan REFERENCES annual_plan (id) "
                   f"CONSTRAINT ck_inspection_in_plan_or_reason CHECK ({CHECK})")
    else:
        op.add_column('inspection', sa.Column('plan_id', sa.Integer(), nullable=True,
                                              comment='the annual plan it counts against (年度现场检查计划)'))
        op.create_foreign_key(op.f('fk_inspection_plan_id_annual_plan'), 'inspection', 'annual_plan',
                              ['plan_id'], ['id'])

    approved = (sa.select(annual_plan.c.id)
                .where(annual_plan.c.unit_id == inspection.c.unit_id, annual_plan.c.status == 'approved',
                       annual_plan.c.year == sa.extract('year', inspection.c.window_start))
                .scalar_subquery())
    bind.execute(inspection.update().where(inspection.c.kind.not_in(['random', 'tip']), approved.is_not(None))
                 .values(plan_id=approved, outside_plan_reason=None))
    drawn = sa.select(draw.c.plan_id).where(draw.c.id == inspection.c.draw_id).scalar_subquery()
    bind.execute(inspection.update().where(inspection.c.kind == 'random', drawn.is_not(None))
                 .values(plan_id=drawn))
    if not sqlite:
        op.create_check_constraint(op.f('ck_inspection_in_plan_or_reason'), 'inspection', CHECK)


def downgrade():
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f('ck_inspection_in_plan_or_reason'), 'inspection', type_='check')
        op.drop_constraint(op.f('fk_inspection_plan_id_annual_plan'), 'inspection', type_='foreignkey')
    # Plain ALTER TABLE on SQLite (3.35+): plan_id's column constraints go with it, then the reason.
    op.drop_column('inspection', 'plan_id')
    op.drop_column('inspection', 'outside_plan_reason')
