"""Saving and loading: safetensors weights + JSON arch spec + JSON metadata, written atomically."""

from slimvision.io.artifact import (
    ArchSpec,
    Artifact,
    environment_record,
    is_artifact_dir,
    load_artifact,
    load_state_file,
    load_weights_into,
    read_json,
    recorded_input_size,
    save_artifact,
    save_safetensors_atomic,
    write_artifact_files,
)
from slimvision.io.atomic import atomic_directory, atomic_write_bytes, atomic_write_json
from slimvision.io.resolve import load_user_weights, resolve_model, source_arch, source_meta

__all__ = [
    "ArchSpec", "Artifact", "environment_record", "is_artifact_dir", "load_artifact", "load_state_file",
    "load_weights_into", "read_json", "recorded_input_size", "save_artifact", "atomic_directory", "atomic_write_bytes", "atomic_write_json",
    "save_safetensors_atomic", "write_artifact_files", "resolve_model", "source_arch", "source_meta", "load_user_weights",
]
