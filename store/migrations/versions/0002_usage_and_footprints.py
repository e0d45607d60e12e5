"""usage counters, model-call timings, image footprints

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 12:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('image_footprints',
    sa.Column('image_sha256', sa.String(length=64), nullable=False),
    sa.Column('epsg', sa.Integer(), nullable=False),
    sa.Column('crs', sa.String(length=128), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('width_m', sa.Float(), nullable=False),
    sa.Column('height_m', sa.Float(), nullable=False),
    sa.Column('acquired', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['image_sha256'], ['images.sha256'], name=op.f('fk_image_footprints_image_sha256_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_sha256', name=op.f('pk_image_footprints'))
    )
    op.create_table('usage_days',
    sa.Column('account', sa.String(length=160), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('model_calls', sa.Integer(), nullable=False),
    sa.Column('upload_bytes', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('account', 'day', name=op.f('pk_usage_days'))
    )
    with op.batch_alter_table('usage_days', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_usage_days_day'), ['day'], unique=False)
    op.create_table('model_calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_calls'))
    )
    with op.batch_alter_table('model_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_calls_at'), ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('model_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_calls_at'))
    op.drop_table('model_calls')
    with op.batch_alter_table('usage_days', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_usage_days_day'))
    op.drop_table('usage_days')
    op.drop_table('image_footprints')
