"""Alembic migrations of the coordinator's schema; run them with ``coordinator db upgrade``."""
