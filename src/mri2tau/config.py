"""Configuration: presets merged under the user's config, then validated.

The user's ``config.yaml`` names a ``preset`` (``demo`` or ``paper``); every key it sets
overrides the preset's value (deep merge). The merged dict is validated section by section
against the JSON schemas shipped in ``mri2tau/schemas/`` so a wrong key or type fails at start-up
with a message naming the key.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

PRESETS = ("demo", "paper")
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"  # package data: works installed too


def load_preset(name: str) -> dict[str, Any]:
    """Return the preset ``name`` (a dict) shipped in ``mri2tau/presets/<name>.yaml``."""
    if name not in PRESETS:
        raise ValueError(f"config key 'preset': unknown preset {name!r}; choose one of {PRESETS}")
    text = resources.files("mri2tau.presets").joinpath(f"{name}.yaml").read_text()
    return yaml.safe_load(text)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated recursively by ``override`` (override wins; lists replace)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_config(user: dict[str, Any]) -> dict[str, Any]:
    """Merge the user's config over its preset; the result always has ``preset`` set."""
    preset = user.get("preset", "demo")
    merged = deep_merge(load_preset(preset), dict(user))
    merged["preset"] = preset
    return merged


def schema_files(schema_dir: Path = SCHEMA_DIR) -> dict[str, Path]:
    """Map config section name -> its schema file (``<section>.schema.yaml``)."""
    return {
        p.name.removesuffix(".schema.yaml"): p
        for p in sorted(schema_dir.glob("*.schema.yaml"))
        if p.name != "config.schema.yaml"
    }


def validate_config(config: dict[str, Any], schema_dir: Path = SCHEMA_DIR) -> None:
    """Validate the top level and every section; raise ``ValueError`` naming the bad key."""
    import jsonschema

    def check(instance: Any, schema_path: Path, where: str) -> None:
        schema = yaml.safe_load(schema_path.read_text())
        validator = jsonschema.Draft202012Validator(schema)
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
        if errors:
            err = errors[0]
            key = ".".join([where, *map(str, err.path)]) if where else ".".join(map(str, err.path))
            raise ValueError(f"config key '{key or where}': {err.message}")

    check(config, schema_dir / "config.schema.yaml", "")
    for section, path in schema_files(schema_dir).items():
        if section in config:
            check(config[section], path, section)
    check_combinations(config)


def check_combinations(config: dict[str, Any]) -> None:
    """Settings valid alone but not together: raise ``ValueError`` naming the keys."""
    matching = config.get("harmonization", {}).get("resolution_matching", {})
    if config.get("data", {}).get("pet_input") == "uniform" and matching.get("enabled"):
        raise ValueError("config keys 'data.pet_input' and 'harmonization.resolution_matching.enabled': ADNI's "
                         "uniform-resolution PET (step 4) is already smoothed to a common resolution; set "
                         "harmonization.resolution_matching.enabled: false (or data.pet_input: auto)")


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a user config YAML, resolve its preset and validate it (for the CLI and tests)."""
    user = yaml.safe_load(Path(path).read_text()) or {}
    config = resolve_config(user)
    validate_config(config)
    return config
