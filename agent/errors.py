"""Errors the CLI turns into one clear line and a non-zero exit."""


class StartupError(Exception):
    """A configuration or environment problem found before serving; the message says what to set."""
