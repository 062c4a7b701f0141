"""Security building blocks: PKI, sealed secrets, signed births, enrollment keys, admission.

Each module is small and usable on its own; the daemon plugs them in (see docs/security.md).
"""
