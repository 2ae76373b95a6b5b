"""Alembic scripts that create and upgrade the SQL store's schema.

They run programmatically when a store opens (see `rucat.store.sql`); no
alembic.ini is needed. Each revision is frozen once released: schema changes
are new revisions, never edits of old ones.
"""
