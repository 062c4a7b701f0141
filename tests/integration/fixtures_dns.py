"""Fixtures for the real dns (filled in by its adapter's tests)."""
