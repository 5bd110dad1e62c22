"""The one base class of every error a user can fix: the CLI prints it as one line, without a traceback."""


class ShopfloorError(Exception):
    """An error whose message says what is wrong and how to fix it, in one line."""


class ConfigError(ShopfloorError, ValueError):
    """A configuration, plant or plan file that cannot work."""
