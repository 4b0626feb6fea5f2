"""sangja (상자, "box"): a daemonless container engine and OCI runtime.

Kept import-free on purpose: `sangja-runtime` start-up time is a feature.
"""

__version__ = "0.1.0"
OCI_VERSION = "1.2.0"
