"""Errors a backend raises that its callers handle (torch-free, so the bot imports it cheaply)."""

from __future__ import annotations


class BackendUnavailableError(RuntimeError):
    """The backend's server cannot be reached or went away mid-request; try again later."""
