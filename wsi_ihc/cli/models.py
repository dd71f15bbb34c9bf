"""``wsi-ihc models``: the built-in models, each with its card."""

from __future__ import annotations

import click


@click.command(short_help="List the built-in models and their cards.")
@click.argument("name", required=False)
def models(name: str | None) -> None:
    """List the built-in models (or show NAME's): name, whether its weights pass their
    sha256 check, and its model card (data and terms, pixel size, recipe, metrics, what it
    is not for). Pass one to `--model` of infer, batch, evaluate or train --init."""
    from wsi_ihc.errors import CheckpointError, ConfigError
    from wsi_ihc.model.registry import BUILTINS, DEFAULT, verified

    if name is not None and name not in BUILTINS:
        raise ConfigError(f"{name}: no such built-in model ({', '.join(BUILTINS)})")
    for model in BUILTINS.values() if name is None else [BUILTINS[name]]:
        try:
            verified(model)
            status = f"sha256 {model.sha256[:12]}… ok"
        except CheckpointError as exc:
            status = f"NOT USABLE: {exc}"
        default = " (default)" if model.name == DEFAULT else ""
        click.echo(f"{model.name}{default}: {model.summary}")
        click.echo(f"  weights: {model.weights()} [{status}]")
        card = model.card()
        click.echo(card.read_text() if card.is_file() else f"  (no card at {card})")
