"""The one error family the library raises for bad input; the CLI prints it as one line."""


class SlimvisionError(Exception):
    """A user-facing error: the message names the file, layer, key or value that is wrong."""


class ArtifactError(SlimvisionError):
    """A model directory or checkpoint is missing, corrupt or of an unknown format."""


class DataError(SlimvisionError):
    """A dataset path is missing or its contents are not in the expected format."""


class ConfigError(SlimvisionError):
    """A configuration value is out of range or inconsistent."""
