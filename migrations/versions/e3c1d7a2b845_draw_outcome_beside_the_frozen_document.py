"""draw outcome beside the frozen document, run input without the targets, strata drawn per period

Revision ID: e3c1d7a2b845
Revises: 4af6a18d44d0
Create Date: 2026-11-30 13:50:00.000000

"""
import json
import zlib

from alembic import op
import sqlalchemy as sa

from server.modules.draws import algorithm  # standard library only, versioned: safe to use here


# revision identifiers, used by Alembic.
revision = 'e3c1d7a2b845'
down_revision = '4af6a18d44d0'
branch_labels = None
depends_on = None

OUTCOME = ("commitments", "reveals", "public_value", "seed", "result", "result_hash")
draw = sa.table("draw", sa.column("id", sa.String), sa.column("status", sa.String),
                sa.column("document", sa.LargeBinary), sa.column("run_input", sa.LargeBinary),
                sa.column("outcome", sa.LargeBinary), sa.column("strata", sa.JSON))


def _pack(doc):
    return zlib.compress(algorithm.canonical_json(doc), 1)


def upgrade():
    with op.batch_alter_table('draw', schema=None) as batch_op:
        batch_op.add_column(sa.Column('run_input', sa.LargeBinary(), nullable=True, comment='zlib(JSON): the frozen document without its targets, with the strata drawn from'))
        batch_op.add_column(sa.Column('outcome', sa.LargeBinary(), nullable=True, comment='zlib(canonical JSON): commitments, reveals, public value, seed and result'))
        batch_op.add_column(sa.Column('strata', sa.JSON(), nullable=True, comment='region|category strata the pools were frozen for (each is drawn once per rule period)'))
    bind = op.get_bind()
    for draw_id, status, packed in bind.execute(sa.select(draw.c.id, draw.c.status, draw.c.document)
                                                .where(draw.c.document.is_not(None))).all():
        doc = json.loads(zlib.decompress(packed))
        values = {"strata": sorted(doc["rules"])}
        if "result" in doc:  # run: the outcome beside the frozen document (a published one stays whole)
            values["outcome"] = _pack({key: doc.pop(key) for key in OUTCOME if key in doc})
            if status != "published":
                values["document"] = _pack(doc)
        elif status == "frozen":
            strata = algorithm.quotas(doc)
            values["run_input"] = _pack({**{key: value for key, value in doc.items() if key != "targets"},
                                         "strata": {key: [members, quota] for key, (members, quota) in strata.items()}})
        bind.execute(draw.update().where(draw.c.id == draw_id).values(**values))


def downgrade():
    bind = op.get_bind()
    for draw_id, packed, outcome in bind.execute(sa.select(draw.c.id, draw.c.document, draw.c.outcome)
                                                 .where(draw.c.outcome.is_not(None))).all():
        doc = {**json.loads(zlib.decompress(packed)), **json.loads(zlib.decompress(outcome))}
        bind.execute(draw.update().where(draw.c.id == draw_id).values(document=_pack(doc)))
    # Plain ALTER TABLE (SQLite 3.35+): a batch copy of ``draw`` would trip the keys pointing at it.
    op.drop_column('draw', 'strata')
    op.drop_column('draw', 'outcome')
    op.drop_column('draw', 'run_input')
