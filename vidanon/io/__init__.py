"""Video and image input/output."""
