"""The Kubernetes platform: an engine is a driver pod and its service."""
