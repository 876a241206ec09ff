"""Exceptions a user can act on. The stage CLIs print them as one line and exit non-zero."""


class PipelineError(Exception):
    """Bad input or a failed precondition; the message says what, where and what to do."""


class ConfigError(PipelineError):
    """`params.yaml` (or another params file) is missing, malformed or out of range."""


class DownloadError(PipelineError):
    """No configured source served a valid corpus."""


class ValidationFailed(PipelineError):
    """The corpus broke one or more data expectations."""


class UnreadableArray(PipelineError, ValueError):
    """A `.npy` file that is not a plain numeric array; it is refused, never unpickled.

    Also a `ValueError`, which is what `numpy.load` raises for such a file.
    """
