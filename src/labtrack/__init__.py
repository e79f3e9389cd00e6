"""labtrack: experiment tracking for JupyterLab on HPC clusters and offline machines."""

from labtrack._version import __version__

__all__ = ["__version__"]
