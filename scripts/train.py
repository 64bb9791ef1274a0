"""Runs `vidanon train` without the main CLI (same options): python scripts/train.py --help."""

from __future__ import annotations

import sys

import typer

from vidanon.errors import VidanonError
from vidanon.train.command import train_cmd

if __name__ == "__main__":
    app = typer.Typer(add_completion=False)
    app.command()(train_cmd)
    try:
        app()
    except VidanonError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.exit_code)
