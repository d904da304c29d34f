"""cnnlab: a command-line experiment runner for transfer learning and CNN compression."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:  # the installed distribution is the single source of the version (probe 144: the import inside the try made a
    # Ctrl-C during it a NameError in the except clause)
    __version__ = version("cnnlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
