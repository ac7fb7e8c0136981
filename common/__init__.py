"""paragon-licensed: the license daemon of a print-management installation's management nodes."""

__version__ = "0.2.0"
