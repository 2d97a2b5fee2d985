"""Alembic migrations of the report store, shipped in the package and applied at start-up."""
