"""``mri2tau models [--preset paper|demo]``: the model registry as a table with parameter counts."""

from __future__ import annotations

import argparse

import torch

from mri2tau.models import registry


def parameter_counts(name: str, preset: str) -> dict[str, int]:
    """Parameters of each network of model ``name`` at ``preset``.

    Built on the meta device (nothing allocated); a model whose constructor needs real tensor
    values (e.g. MONAI's SwinUNETR calls ``.item()``) is built on the CPU instead.
    """
    try:
        with torch.device("meta"):
            networks = registry.build(name, preset)
    except (RuntimeError, NotImplementedError):
        networks = registry.build(name, preset)
    return {role: registry.count_parameters(net) for role, net in networks.items()}


def registry_table(preset: str) -> list[dict[str, str]]:
    """One row per registered model: name, dims, family, generator / total parameters, description."""
    rows = []
    for name in registry.available():
        spec = registry.get(name)
        try:
            counts = parameter_counts(name, preset)
            generator, total = f"{counts['generator'] / 1e6:.2f} M", f"{sum(counts.values()) / 1e6:.2f} M"
        except Exception as exc:  # noqa: BLE001 - one broken model must not hide the others
            generator, total = "error", f"{type(exc).__name__}: {exc}"
        rows.append(
            {
                "name": name,
                "dims": f"{spec.dims}D",
                "family": spec.family,
                "generator": generator,
                "total": total,
                "description": spec.description,
            }
        )
    return rows


def format_table(rows: list[dict[str, str]]) -> str:
    """Fixed-width text table with a header line."""
    columns = ["name", "dims", "family", "generator", "total", "description"]
    widths = {col: max(len(col), *(len(row[col]) for row in rows)) for col in columns}
    lines = ["  ".join(col.ljust(widths[col]) for col in columns).rstrip()]
    lines += ["  ".join(row[col].ljust(widths[col]) for col in columns).rstrip() for row in rows]
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    rows = registry_table(args.preset)
    print(f"preset {args.preset}: parameters of the generator and of all networks (generator + discriminators)")
    print(format_table(rows))
    return 1 if any(row["generator"] == "error" for row in rows) else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``models`` sub-command."""
    parser = subparsers.add_parser("models", help="list registered models with parameter counts")
    parser.add_argument("--preset", choices=("paper", "demo"), default="paper", help="hyper-parameter preset")
    parser.set_defaults(func=_run)
