"""stateless: directory-federated configuration for stateless ESXi hosts."""

__version__ = "0.1.0"
