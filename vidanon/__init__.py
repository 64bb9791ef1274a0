"""vidanon: anonymize faces in recorded video with consistent generated faces."""

__version__ = "0.1.0"
