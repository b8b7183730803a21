"""The exit statuses of ``lofi``."""

EXIT_INTERNAL = 1  # an unexpected error (a bug): logged with its traceback
EXIT_USAGE = 2  # bad input, a missing model, a full disk: the user's to fix
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
