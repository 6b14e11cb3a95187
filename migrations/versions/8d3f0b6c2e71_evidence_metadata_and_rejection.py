"""evidence items show what was read from their bytes, and why bytes were refused (issue 15)

``evidence_item.media_metadata``: capture time and where it came from, GPS in WGS-84 with GCJ-02
beside it, altitude, accuracy, make, model, orientation, pixel size, video duration.
``evidence_item.rejection``: the code and message of a refused upload (type, image size, hash);
such an item has the new status ``rejected`` (a VARCHAR enum: no type to alter).

Revision ID: 8d3f0b6c2e71
Revises: 5c0d3e8a41f7
Create Date: 2026-12-08 01:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '8d3f0b6c2e71'
down_revision = '5c0d3e8a41f7'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('evidence_item', recreate='never') as batch_op:
        batch_op.add_column(sa.Column('media_metadata', sa.JSON(), nullable=True, comment=(
            'what was read from the bytes: capture time and its source, GPS (WGS-84 and GCJ-02), camera, size')))
        batch_op.add_column(sa.Column('rejection', sa.JSON(), nullable=True, comment=(
            'why the bytes sent for it were refused: code, message_zh, message_en, detail, at')))


def downgrade():
    with op.batch_alter_table('evidence_item', recreate='never') as batch_op:
        batch_op.drop_column('rejection')
        batch_op.drop_column('media_metadata')
