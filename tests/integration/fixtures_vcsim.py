"""Fixtures for the real vcsim (filled in by its adapter's tests)."""
