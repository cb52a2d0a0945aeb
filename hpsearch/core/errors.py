"""The one base class for mistakes a user can fix: the CLI maps it to exit code 2."""

#: The exit code of bad input, in the CLI and for a worker process: a launch does not
#: restart a worker that exited with it, as the same input would stop it again.
EXIT_BAD_INPUT = 2


class UserError(Exception):
    """Bad input: a study file, a search name, an option. The message says the fix."""
