"""Fixtures for the real slapd (filled in by its adapter's tests)."""
