"""The one base class for mistakes a user can fix: the CLI maps it to exit code 2."""


class UserError(Exception):
    """Bad input: a study file, a search name, an option. The message says the fix."""
