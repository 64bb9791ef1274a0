"""Typed errors. Library code raises these; only the CLI turns them into exit codes."""

from __future__ import annotations


class VidanonError(Exception):
    """Base class. `exit_code` is what the CLI returns for it."""

    exit_code = 1


class InputError(VidanonError):
    """The input is missing, unreadable, not media, or has no video."""

    exit_code = 2


class OutputError(VidanonError):
    """The output path is refused, or writing it failed."""

    exit_code = 2


class CodecError(VidanonError):
    """Decoding or encoding failed in a way that cannot be worked around."""

    exit_code = 1


class ModelLoadError(VidanonError):
    """A model or checkpoint is missing, corrupt or does not match its config."""

    exit_code = 2


class StrictModeError(VidanonError):
    """`--strict` was given and the input had damage that was skipped."""

    exit_code = 1


class ConfigError(VidanonError):
    """An option value is out of range or unknown."""

    exit_code = 2
