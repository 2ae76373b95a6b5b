"""The SQL store (SQLite and PostgreSQL through SQLAlchemy), with its Alembic migrations."""
