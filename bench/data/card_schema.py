"""The schema of dataset cards (``datasets/<name>.toml``, see ``datasets/README.md``).

A pydantic model, strict (no coercion) and closed (unknown keys refused); ``bench.data.real``
converts it into the ``DatasetCard`` dataclass the rest of the suite uses. ``python -m bench
schema`` writes its JSON schema for editors.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from bench.core.schema import TomlModel, name_is_file_name, rule


class ChecksumsModel(TomlModel):
    """``[checksums]``: digests of the original files."""

    md5: dict[str, str] = Field(
        {}, description="path under <data-root>/<folder> -> md5 of the original file"
    )


class CardModel(TomlModel):
    """A dataset card: loader, shape, classes and normalisation of one dataset."""

    name: str = Field(description="equal to the file name")
    display_name: str = Field(description="how tables and pictures name the dataset")
    loader: str = Field(description='the torchvision class, e.g. "torchvision.datasets.MNIST"')
    folder: str = Field(description="the folder under --data-root the loader reads")
    channels: int = Field(ge=1, description="image channels (1 grey, 3 RGB)")
    image_size: list[int] = Field(
        min_length=2, max_length=2, description="[height, width] in pixels"
    )
    classes: list[str] = Field(min_length=2, description="class names in label order 0..K-1")
    mean: list[float] = Field(description="per-channel normalisation mean of [0, 1] pixels")
    std: list[float] = Field(description="per-channel normalisation std of [0, 1] pixels")
    splits: dict[str, int] = Field(description="split name -> number of images")
    source: str = Field(description="where the files come from")
    licence: str = Field(description="the dataset's licence or terms of use")
    checksums: ChecksumsModel = Field(ChecksumsModel(), description="the [checksums.md5] table")
    variant_of: str | None = Field(
        None, description="the card whose dataset this is another copy of (e.g. cifar10)"
    )

    _name = field_validator("name")(name_is_file_name)

    @model_validator(mode="after")
    def _one_mean_and_std_per_channel(self) -> CardModel:
        if not len(self.mean) == len(self.std) == self.channels:
            raise rule(
                f"'mean' and 'std' need one value per channel ({self.channels}), got "
                f"{len(self.mean)} and {len(self.std)}"
            )
        if any(s <= 0 for s in self.std):
            raise rule(f"'std' must be positive, got {self.std}")
        return self
