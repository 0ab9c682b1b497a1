# Rendered by niriss-pipe 0.1.0 from default.yaml: do not edit, edit the spec.
# Image: niriss-pipe:jwst_1584 (jwst_1584-jwst3.0.0-py3.11)
# Stages run from least to most often changed, so a new pmap reuses every environment layer.
# Classic builder compatible (Docker Engine 20.10, no BuildKit features).

# == stage: base ==
FROM niriss-pipe-base:bookworm-minbase-27f28161 AS system
SHELL ["/bin/sh", "-eu", "-c"]
ENV LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive

# == stage: os-packages ==
# ca-certificates python3 python3-venv and what they need that the base lacks: the .deb files apt
# downloaded for this base on the build host (build.py fetch; build/debs.py), checked by their
# sha256 and installed with no network. They come in a build-only layer under
# /tmp/niriss-pipe-build, which the image is rewritten without. apt's logs and caches (times,
# host details) are not part of the image.
COPY os-packages/ /tmp/niriss-pipe-build/
RUN cd /tmp/niriss-pipe-build/debs \
 && if [ -s SHA256SUMS ]; then sha256sum -c --quiet SHA256SUMS \
      && apt-get install -y --no-install-recommends /tmp/niriss-pipe-build/debs/*.deb; fi \
 && cd / \
 && apt-get clean \
 && rm -rf /tmp/niriss-pipe-build /var/lib/apt/lists/* /var/log/apt/*.log /var/log/dpkg.log \
      /var/log/alternatives.log /var/cache/ldconfig/aux-cache /var/cache/debconf/*-old \
      /var/lib/dpkg/*-old

# The Python environment, made in the image's own lineage: copying it out of a stage of its own
# costs as much again as installing it.
FROM system AS environment
# Bytecode written with SOURCE_DATE_EPOCH set is hash-checked (PEP 552), not stamped with
# the install time.
ARG SOURCE_DATE_EPOCH

# == stage: python-env ==
RUN python3 -m venv /opt/env \
 && /opt/env/bin/python -c 'import sys; v = "%d.%d" % sys.version_info[:2]; assert v == "3.11", "base gives Python " + v + ", spec wants 3.11"'

# == stage: build-only ==
# What only the build needs comes in one layer under /tmp/niriss-pipe-build: the verified
# wheels and uv, a helper, and build.env, the settings each step sources (its HOME), so no ARG or ENV
# names them. The last step removes the folder, and the image is rewritten without it and
# without this layer (build/normalize.py): nothing of the build host reaches the image.
COPY build-only/ /tmp/niriss-pipe-build/

# == stage: jwst ==
# Exactly the locked, hash-checked environment (build.py lock): no resolver runs here. uv
# installs it from the host's verified wheels (build.py fetch), with no index and no network;
# uv itself comes from its wheel, checked by its sha256. uv's uv_cache.json (its install time)
# is dropped with its RECORD line, and the bytecode is written by a fixed set of compileall
# runs in name order (PYTHONHASHSEED=0): the same lock gives the same bytes.
COPY requirements.lock /opt/niriss-pipe/requirements.lock
RUN set -a && . /tmp/niriss-pipe-build/build.env && set +a \
 && echo 'd7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19  /tmp/niriss-pipe-build/wheels/uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl' | sha256sum -c --quiet - \
 && /opt/env/bin/python -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
      /tmp/niriss-pipe-build/wheels/uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl uv-0.13.9.data/scripts/uv /tmp/niriss-pipe-build \
 && chmod 0755 /tmp/niriss-pipe-build/uv-0.13.9.data/scripts/uv \
 && /tmp/niriss-pipe-build/uv-0.13.9.data/scripts/uv pip install --quiet \
      --python /opt/env/bin/python --offline --no-index --find-links /tmp/niriss-pipe-build/wheels \
      --no-cache --link-mode copy --no-build --require-hashes --no-deps -r /opt/niriss-pipe/requirements.lock \
 && cd "$(/opt/env/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
 && for record in *.dist-info/RECORD; do \
      rm -f "${record%RECORD}uv_cache.json"; sed -i '/[.]dist-info[/]uv_cache[.]json,/d' "$record"; \
    done \
 && /opt/env/bin/python /tmp/niriss-pipe-build/overlaps.py /tmp/niriss-pipe-build/wheels \
 && cd "$(/opt/env/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
 && find . -mindepth 1 -maxdepth 1 -print0 | LC_ALL=C sort -z \
  | PYTHONHASHSEED=0 xargs -0 -P 2 -n 16 /opt/env/bin/python -m compileall -q \
 && cd / \
 && /opt/env/bin/python -m pip check \
 && /opt/env/bin/python -c 'import jwst, crds; print("jwst", jwst.__version__, "crds", crds.__version__)' \
 && rm -rf /tmp/niriss-pipe-build

# == stage: runtime ==
# A stage of its own (kept as the cache of the next build), so that a new pmap rebuilds only
# what follows it.
FROM environment AS runtime
ARG SOURCE_DATE_EPOCH
COPY niriss_pipe/ /opt/niriss-pipe/niriss_pipe/
COPY entrypoint.sh /usr/local/bin/niriss-pipe-entrypoint
RUN /opt/env/bin/python -c 'import site; open(site.getsitepackages()[0] + "/niriss_pipe_runtime.pth", "w").write("/opt/niriss-pipe\n")' \
 && chmod 0755 /usr/local/bin/niriss-pipe-entrypoint \
 && useradd --no-log-init --uid 1000 --user-group --create-home --shell /bin/bash jwst \
 && mkdir -p /crds /data && chown jwst:jwst /data \
 && /opt/env/bin/python -m compileall -q /opt/niriss-pipe
ENV PATH=/opt/env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CRDS_PATH=/crds \
    CRDS_SERVER_URL=https://jwst-serverless-mode.stsci.edu \
    CRDS_MODE=local \
    CRDS_READONLY_CACHE=1 \
    MPLBACKEND=Agg
USER jwst
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/niriss-pipe-entrypoint"]
CMD ["info"]

FROM runtime

# == stage: context ==
ENV CRDS_CONTEXT=jwst_1584.pmap \
    NIRISS_PIPE_CRDS_SCOPE=instrument
ARG NIRISS_PIPE_CREATED
ARG NIRISS_PIPE_REVISION
ARG NIRISS_PIPE_SOURCE
ARG NIRISS_PIPE_BASE_DIGEST
ARG NIRISS_PIPE_LOCK_DIGEST
LABEL \
      io.niriss-pipe.base.mirror="http://deb.debian.org/debian" \
      io.niriss-pipe.base.suite="bookworm" \
      io.niriss-pipe.base.variant="minbase" \
      io.niriss-pipe.crds.context="jwst_1584.pmap" \
      io.niriss-pipe.crds.references="mount" \
      io.niriss-pipe.crds.scope="instrument" \
      io.niriss-pipe.jwst.version="3.0.0" \
      io.niriss-pipe.lock.file="locks/default.txt" \
      io.niriss-pipe.python.manager="venv" \
      io.niriss-pipe.python.version="3.11" \
      io.niriss-pipe.spec="default.yaml" \
      io.niriss-pipe.tool.version="0.1.0" \
      org.opencontainers.image.base.name="niriss-pipe-base:bookworm-minbase-27f28161" \
      org.opencontainers.image.description="JWST calibration pipeline (jwst 3.0.0) for NIRISS, offline with CRDS context jwst_1584.pmap" \
      org.opencontainers.image.title="niriss-pipe" \
      org.opencontainers.image.version="jwst_1584-jwst3.0.0-py3.11" \
      org.opencontainers.image.created="${NIRISS_PIPE_CREATED}" \
      org.opencontainers.image.revision="${NIRISS_PIPE_REVISION}" \
      org.opencontainers.image.source="${NIRISS_PIPE_SOURCE}" \
      org.opencontainers.image.base.digest="${NIRISS_PIPE_BASE_DIGEST}" \
      io.niriss-pipe.lock.digest="${NIRISS_PIPE_LOCK_DIGEST}"
