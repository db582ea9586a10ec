"""Error types raised for bad user input.

Every error names the file and the key (or row/column) that is wrong, so a user
can fix the config without reading a traceback.
"""

import difflib


class ConfigError(ValueError):
    """A configuration file is missing, malformed, or holds a bad key/value."""


class DataError(ValueError):
    """An input data file is missing or holds values that cannot be processed."""


def closest(name, candidates):
    """Return ' (did you mean 'x'?)' for the closest candidate, or ''."""
    match = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def unknown_key_error(where, key, allowed):
    allowed = sorted(allowed)
    return ConfigError(
        f"{where}: unknown key '{key}'{closest(key, allowed)}. "
        f"Allowed keys: {', '.join(allowed)}"
    )
