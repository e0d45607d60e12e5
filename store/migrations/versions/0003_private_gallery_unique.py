"""each image at most once in a chat's private gallery

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 11:40:00

A chat's uploads join its private gallery; sending the same image again must not add a second
row. The gallery checks before inserting under its index lock; this partial unique index makes
the database refuse a duplicate even from a writer that skipped the check. Public rows (owner
NULL) are not constrained: the operator's gallery builder deduplicates those itself.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

WHERE = sa.text('owner_user_id IS NOT NULL')


def upgrade() -> None:
    with op.batch_alter_table('gallery_items', schema=None) as batch_op:
        batch_op.create_index('uq_gallery_items_private', ['gallery', 'owner_user_id',
                                                            'image_sha256'],
                              unique=True, sqlite_where=WHERE, postgresql_where=WHERE)


def downgrade() -> None:
    with op.batch_alter_table('gallery_items', schema=None) as batch_op:
        batch_op.drop_index('uq_gallery_items_private')
