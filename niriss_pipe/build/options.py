"""Build layer: what a build is asked to do and what it made."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from niriss_pipe.crds.hostcache import DEFAULT_CACHE
from niriss_pipe.crds.sync import DEFAULT_SERVER


@dataclass
class BuildOptions:
    ca_bundle: str | None = None  # path, "none", or None for auto-detection
    cache: Path = DEFAULT_CACHE
    crds_server: str = DEFAULT_SERVER  # where a bake syncs from
    sync_jobs: int = 8
    selftest: bool = True
    force: bool = False
    no_cache: bool = False  # rebuild every layer (implies force)
    # The image's times; None: $SOURCE_DATE_EPOCH, else the day its lock was resolved as of.
    source_date_epoch: str | None = None
    wheels: Path | None = None  # the verified wheel folder; None: build/wheels.cache_dir()
    # The tool's revision and source labels; None: this checkout's (stamps.label_args).
    revision_label: str | None = None
    source_label: str | None = None
    offline: bool = False  # no download, no network in any build step


@dataclass
class BuildResult:
    image_id: str
    tags: list[str]
    content_tag: str
    built: bool  # False when the content tag already existed
    seconds: float
    selftest_output: str = ""
    selftest_reused_from: str | None = None  # the image whose verdict this build reused
    notes: list[str] = field(default_factory=list)
    stage_images: dict[str, str] = field(default_factory=dict)  # build stages it made
