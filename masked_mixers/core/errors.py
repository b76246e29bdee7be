"""One exception type for mistakes a user can fix.

The CLI turns a `UserError` into one line on stderr and exit status 2, with no traceback:
the message must name the file, key or value at fault. Anything else that escapes is a bug
and keeps its traceback.
"""


class UserError(Exception):
    """Bad input (a file, a config key, a value) described in one line."""

    exit_code = 2


def reason(err: BaseException) -> str:
    """The first line of a library's exception, to quote inside a one-line UserError."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
