"""Errors that reach the user as one clear line (the CLI prints them and exits 2)."""


class LofiError(Exception):
    """A problem the user can act on; its message is shown as-is, without a traceback."""


class UsageError(LofiError):
    """Invalid input on the command line or in a request (bad duration, empty prompt, ...)."""


class ModelError(LofiError):
    """A model is missing, incomplete, corrupt or does not have the expected inputs/outputs."""


class DeviceError(LofiError):
    """A requested execution provider or audio device is not available."""


class Cancelled(Exception):
    """Raised inside an engine when its job was cancelled between two steps."""
