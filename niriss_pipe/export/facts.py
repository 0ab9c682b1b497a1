"""Export layer: what an export needs to know of the image (name, id, run configuration)."""

from __future__ import annotations

from dataclasses import dataclass

from niriss_pipe.core.errors import UserError, prog

CHUNK = 1 << 20  # bytes per read of an engine stream (save, export)


@dataclass(frozen=True)
class ImageFacts:
    """What an export needs to know about the image: its name, id and run configuration."""

    reference: str
    id: str
    tags: tuple[str, ...]
    env: tuple[str, ...]
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]

    @property
    def name(self) -> str:
        """The tag the user asked for, else the image's first tag ('' for an untagged id)."""
        if self.reference in self.tags:
            return self.reference
        return self.tags[0] if self.tags else ""

    def env_value(self, key: str, default: str = "") -> str:
        return env_value(self.env, key, default)


def env_value(items, key: str, default: str = "") -> str:
    """The value of ``key`` among ``KEY=VALUE`` items (an image's ENV, /ch/environment lines)."""
    values = dict(item.split("=", 1) for item in items if "=" in item)
    return values.get(key, default)


# -- engine side ---------------------------------------------------------------------------------
def image_facts(engine, reference: str) -> ImageFacts:
    """The image's name, id and run configuration, or a UserError when it is not there."""
    info = engine.image_info(reference)
    if info is None:
        raise UserError(f"no image '{reference}' in the local engine.",
                        f"build it first ({prog()} build SPEC), or give a name or id from "
                        "'docker images'.")
    return ImageFacts(reference=reference, id=info.id, tags=info.tags, env=info.env,
                      entrypoint=info.entrypoint, cmd=info.cmd)
