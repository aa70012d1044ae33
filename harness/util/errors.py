"""User-facing errors: the CLI prints their message as one line and exits non-zero, before doing any work."""


class HarnessError(Exception):
    """A problem the user can fix (bad name, bad key, missing file); the message says how."""


class ConfigError(HarnessError, ValueError):
    """A bad config key, value or preset; the message is one line meant for the user."""


class UnknownNameError(HarnessError):
    """An unknown plugin, data set, metric or preset name; the message lists the valid ones."""

    def __init__(self, kind: str, name: str, valid: list[str]):
        self.kind, self.name, self.valid = kind, name, list(valid)
        super().__init__(f"unknown {kind} {name!r}; installed: {', '.join(sorted(valid)) or '(none)'}")


class MissingWeightsError(HarnessError):
    """A pretrained weight file is missing or fails its check; the message names the file and where it goes."""


class DataError(HarnessError):
    """A data set is missing or malformed; the message names the expected layout or the offending file."""


class FetchError(HarnessError):
    """A download or an archive failed (offline, unreachable, wrong digest, unsafe member); the message is one
    line naming the file, the address and what was expected, and no partial file is left in place."""


class PluginError(HarnessError):
    """A plugin failed: it raised in a hook or answered the wrong type; the message names the plugin, the hook and
    what was expected."""


def one_line(e: BaseException, limit: int = 300) -> str:
    """``e``'s message on one line (whitespace collapsed), at most ``limit`` characters."""
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
