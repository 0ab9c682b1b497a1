"""The provenance probe: one offline run inside an image that reports what is installed.

It must run in any niriss-pipe image, old ones included, with the image's own Python (3.7 and
newer) and nothing but the standard library: the host sends this file's text with
``python -c`` rather than importing it there, so it imports nothing of niriss_pipe. Its only
argument is a JSON object of what to collect; its answer is one line on stdout, ``MARK`` and
JSON.
"""

import hashlib
import json
import os
import re
import sys

MARK = "NIRISS-PIPE-PROBE "


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions():
    try:
        from importlib import metadata
    except ImportError:
        try:
            import importlib_metadata as metadata
        except ImportError:
            metadata = None
    found = {}
    if metadata is not None:
        for dist in metadata.distributions():
            name = dist.metadata["Name"]
            if not name or canonical(name) in found:
                continue  # the first on sys.path is the one imported
            direct = None
            try:
                text = dist.read_text("direct_url.json")
                direct = json.loads(text) if text else None
            except (OSError, ValueError):
                pass
            found[canonical(name)] = {"version": dist.version, "direct_url": direct}
    else:
        import pkg_resources
        for dist in pkg_resources.working_set:
            found.setdefault(canonical(dist.project_name), {"version": dist.version,
                                                            "direct_url": None})
    return found


def hash_file(path, algorithm):
    h = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def crds_files(root):
    """sha1 of every file below the CRDS cache but its config/ (the host computes the
    manifest digest from these, with the contract's one formula), and the references'
    count and bytes."""
    sha1s, count, size = {}, 0, 0
    for dirpath, dirnames, filenames in os.walk(root):
        if os.path.samefile(dirpath, root):
            dirnames[:] = [d for d in dirnames if d != "config"]
        for name in filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            sha1s[rel] = hash_file(path, "sha1")
            if rel.startswith("references" + os.sep):
                count += 1
                size += os.path.getsize(path)
    return {"files": len(sha1s), "count": count, "bytes": size, "sha1s": sha1s}


def env_manifest(root):
    entries = {}
    for dirpath, dirnames, filenames in os.walk(root):
        keep = []
        for name in sorted(dirnames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                entries[os.path.relpath(path, root)] = "link:" + os.readlink(path)
            elif name != "__pycache__":
                keep.append(name)
        dirnames[:] = keep
        for name in filenames:
            if name.endswith(".pyc"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                entries[rel] = "link:" + os.readlink(path)
            elif os.path.isfile(path):
                try:
                    entries[rel] = "sha256:" + hash_file(path, "sha256")
                except OSError as exc:
                    entries[rel] = "unreadable:" + type(exc).__name__
    return entries


def main(opts):
    out = {"python": sys.version.split()[0], "prefix": sys.prefix, "packages": distributions()}
    for name in ("jwst", "crds"):
        info = out["packages"].get(name)
        out[name] = info["version"] if info else None
    jwst = out["packages"].get("jwst") or {}
    vcs = (jwst.get("direct_url") or {}).get("vcs_info") or {}
    out["jwst_commit"] = vcs.get("commit_id")
    out["jwst_url"] = (jwst.get("direct_url") or {}).get("url")
    for key in ("lock", "test_lock"):  # the test lock: only in a verify --upstream test image
        path = opts.get(key)
        if path and os.path.isfile(path):
            with open(path, "rb") as stream:
                data = stream.read()
            out[key] = {"sha256": "sha256:" + hashlib.sha256(data).hexdigest(),
                        "text": data.decode("utf-8", "replace")}
        else:
            out[key] = None
    if opts.get("crds"):
        out["crds_manifest"] = crds_files(opts["crds"]) if os.path.isdir(opts["crds"]) else None
    if opts.get("env"):
        out["env_manifest"] = env_manifest(opts["env"])
    sys.stdout.write(MARK + json.dumps(out, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
