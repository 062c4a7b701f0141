"""stateless: directory-federated configuration for stateless ESXi hosts."""

import importlib.metadata

__version__ = "0.1.0"


def package_version() -> str:
    """The version pip installed (`stateless --version`), else this source tree's."""
    try:
        return importlib.metadata.version("stateless")
    except importlib.metadata.PackageNotFoundError:
        return __version__
