"""Engine layer: what it hands to the other layers, as plain values (never SDK objects)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RunResult:
    exit_code: int
    output: str


@dataclass
class BuildOutcome:
    """What a build made: the image, and the last image of each named build stage
    (``FROM ... AS NAME``), which nothing else would name."""

    image_id: str
    stage_images: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageInfo:
    """What the other layers read of a local image (no SDK objects leave this module)."""

    id: str
    tags: tuple[str, ...]
    labels: dict
    env: tuple[str, ...]
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    created: str = ""  # when the engine made it (RFC 3339): a label's date may be fixed
