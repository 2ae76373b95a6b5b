"""Alembic scripts that create and upgrade the SQL store's schema.

They run programmatically when a store opens (see `rucat.store.sql.store`); no
alembic.ini is needed. Each revision is frozen once released: schema changes
are new revisions, never edits of old ones.

To change the schema: edit the tables in `rucat/store/sql/schema.py`, add
`versions/vNNNN_<what>.py` (copy the shape of v0001, with `down_revision`
set to the previous revision), and set `SCHEMA_REVISION` to the new id.
tests/integration/test_sql_store.py fails until the migrations produce
exactly the tables of sql/schema.py on SQLite and PostgreSQL, and until
SCHEMA_REVISION is Alembic's head.
"""
