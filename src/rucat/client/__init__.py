"""The Python SDK for Rucat's REST API."""
