"""The version of ckpt-size (one place; the package metadata and the Hub user agent read it)."""
__version__ = "0.1.0"
