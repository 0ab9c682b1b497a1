"""``references: bake``: the spec's context synced into the host cache, then listed as build
context entries under ``crds/``, with the labels that let ``verify`` check them."""

from __future__ import annotations

from dataclasses import dataclass

from niriss_pipe.build.options import BuildOptions
from niriss_pipe.crds import record as syncrecord
from niriss_pipe.crds.sync import SyncRequest, sync
from niriss_pipe.render.context import DiskFile
from niriss_pipe.runtime.contract import manifest_digest
from niriss_pipe.spec.model import ImageSpec


@dataclass
class BakedCache:
    """The CRDS files a baked image carries, as build-context entries under ``crds/``."""

    files: dict[str, bytes]
    disk: dict[str, DiskFile]
    buildargs: dict[str, str]


def bake_cache(spec: ImageSpec, options: BuildOptions, reporter,
               image: str | None = None) -> BakedCache:
    """Sync the spec's context into the host cache (a no-op when it is already verified
    there), then list exactly its closure, references and record for the image. ``image``
    (scope datasets): the image whose jwst chooses the exposures' references."""
    request = SyncRequest(context=spec.context, cache=options.cache, scope=spec.scope,
                          datasets=spec.datasets, server=options.crds_server,
                          jobs=options.sync_jobs, assume_yes=True, image=image)
    result = sync(request, reporter)
    cache = options.cache.resolve()
    disk = {f"crds/{w.dest.relative_to(cache)}": DiskFile(w.dest, w.sha1)
            for w in result.mapping_files + result.reference_files}
    config = cache / "config" / "jwst"
    files = {f"crds/config/jwst/{name}": (config / name).read_bytes()
             for name in ("server_config", "ref_cache_subdir_mode", "bad_files.txt")
             if (config / name).is_file()}
    # The context's record, so the image's check-cache knows its references (for scope
    # datasets the only source); only this context, no host paths or times.
    record = syncrecord.entry(spec.scope, request.instrument,
                              [w.dest.name for w in result.reference_files], True)
    files[f"crds/{syncrecord.RECORD_PATH}"] = syncrecord.text({spec.context: record})
    refs = result.reference_files
    sha1s = {name.removeprefix("crds/"): item.sha1 for name, item in disk.items()}
    return BakedCache(files, disk, {
        "NIRISS_PIPE_REFERENCES_COUNT": str(len(refs)),
        "NIRISS_PIPE_REFERENCES_BYTES": str(sum(w.size for w in refs)),
        "NIRISS_PIPE_REFERENCES_MANIFEST": manifest_digest(sha1s),
    })
