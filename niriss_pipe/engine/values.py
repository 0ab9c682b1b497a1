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
    layers: tuple[str, ...] = ()  # the diff ids of its layers, base first
    user: str = ""
    workdir: str = ""


@dataclass(frozen=True)
class ImageConfig:
    """What the engine shows of an image's config without saving it: enough to write its
    config anew when only its run settings changed (build/normalize.py)."""

    id: str
    layers: tuple[str, ...]  # diff ids, base first
    config: dict  # the run settings (Env, Entrypoint, Labels...), as in the image's config
    architecture: str
    os: str
    history: tuple[tuple[str, str], ...]  # (created_by, comment) of each entry, oldest first
    extra: dict = field(default_factory=dict)  # author, variant, os version: when set
