"""One exception type for mistakes a user can fix.

The CLI turns a `UserError` into one line on stderr and exit status 2, with no traceback:
the message must name the file, key or value at fault. Anything else that escapes is a bug
and keeps its traceback.
"""


class UserError(Exception):
    """Bad input (a file, a config key, a value) described in one line."""

    exit_code = 2
