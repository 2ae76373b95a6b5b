"""The REST API's routers, one per resource: engines, permissions, tokens, operations.

`create_app` (server/app.py) builds the app and includes these routers; each
router factory takes what its routes read (the store, the platform, the
clock) explicitly. Every route under ``/engine/{engine_id}`` takes its engine
through the one dependency in `engine_id.py`.
"""
