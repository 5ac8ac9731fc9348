"""A speech encoder with no feature projection: its CNN's last channels are the Transformer's width and feed it
directly, after the layer norm (ARMHuBERT's students: fairseq builds ``post_extract_proj`` only where the widths
differ). transformers' HuBERT always builds a projection; this structure part (``feature_projection: none``)
replaces it with the identity, so a preset of such a model counts what the published one has, and a saved
variant gets it back on reload. The last convolution's channels then cannot be removed
(:func:`compbench.surgery.conv_channels.keep_conv_channels` says so)."""

from __future__ import annotations

from torch import nn

from compbench.architectures.families import ModelAdapter
from compbench.errors import InvalidInputError
from compbench.surgery.structure import StructurePart, register_part


def remove_feature_projection(adapter: ModelAdapter) -> None:
    """The identity in place of the feature projection, where the CNN's last width is the encoder's."""
    projection = getattr(adapter.base, "feature_projection", None)
    if adapter.modality != "speech" or projection is None:
        raise InvalidInputError(f"{adapter.config.model_type} has no speech feature projection to remove")
    if adapter.config.conv_dim[-1] != adapter.config.hidden_size:
        raise InvalidInputError(f"the CNN's last width ({adapter.config.conv_dim[-1]}) is not the encoder's "
                                f"({adapter.config.hidden_size}): the projection is needed")
    projection.projection = nn.Identity()


def _describe(adapter: ModelAdapter) -> str | None:
    projection = getattr(adapter.base, "feature_projection", None)
    return "none" if projection is not None and isinstance(projection.projection, nn.Identity) else None


def _rebuild(adapter: ModelAdapter, value: str) -> None:
    if value == "none" and _describe(adapter) is None:
        remove_feature_projection(adapter)


register_part(StructurePart("feature_projection", _describe, _rebuild))
