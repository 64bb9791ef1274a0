"""Tracking: persistent face ids, fail-closed hold of missed faces, smoothing."""

from vidanon.track.tracker import FaceTracker

__all__ = ["FaceTracker"]
