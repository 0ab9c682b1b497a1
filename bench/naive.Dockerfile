# The seed's steps as one naive Dockerfile (the baseline of bench/install.py): the same Debian
# base and apt packages, then pip installing jwst 3.0.0 from PyPI with the lock's pins as
# constraints, in one stage, no wheel cache, no self-test, no rewrite of the layers.
ARG BASE
FROM ${BASE}
ENV LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY ca-bundle.crt /etc/ssl/build-ca.crt
COPY constraints.txt /constraints.txt
RUN python3 -m venv /opt/env \
 && PIP_CERT=/etc/ssl/build-ca.crt /opt/env/bin/pip install --no-cache-dir \
      --disable-pip-version-check jwst==3.0.0 -c /constraints.txt \
 && /opt/env/bin/python -c 'import jwst; print("jwst", jwst.__version__)'
