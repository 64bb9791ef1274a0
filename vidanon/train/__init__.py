"""Training the face generator (`vidanon train`). Imports anonymize, never pipeline."""
