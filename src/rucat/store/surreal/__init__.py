"""The SurrealDB store, embedded or remote."""
