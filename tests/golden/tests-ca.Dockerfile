# Rendered by niriss-pipe 0.1.0: the test image of sha256:0b32af7e1a040b32af7e1a040b32af7e1a040b32af7e1a040b32af7e1a040b32 for verify --upstream.
# The image's own files are not changed: the test lock's packages go to /opt/niriss-pipe/test-site,
# installed in a build stage of their own, so nothing of the build host reaches this image.
# Classic builder compatible (Docker Engine 20.10, no BuildKit features).

# == stage: test-deps ==
FROM sha256:0b32af7e1a040b32af7e1a040b32af7e1a040b32af7e1a040b32af7e1a040b32 AS tests
USER root
COPY ca-bundle.crt /etc/niriss-pipe/build-ca.crt
ARG PIP_CERT=/etc/niriss-pipe/build-ca.crt
ARG REQUESTS_CA_BUNDLE=/etc/niriss-pipe/build-ca.crt
ARG SSL_CERT_FILE=/etc/niriss-pipe/build-ca.crt
ARG CURL_CA_BUNDLE=/etc/niriss-pipe/build-ca.crt
ARG GIT_SSL_CAINFO=/etc/niriss-pipe/build-ca.crt
ARG MAMBA_SSL_VERIFY=/etc/niriss-pipe/build-ca.crt
COPY test-requirements.lock /opt/niriss-pipe/test-requirements.lock
RUN /opt/env/bin/python -m pip install --no-cache-dir --disable-pip-version-check \
      --require-hashes --no-deps --target /opt/niriss-pipe/test-site -r /opt/niriss-pipe/test-requirements.lock

# == stage: test-image ==
FROM sha256:0b32af7e1a040b32af7e1a040b32af7e1a040b32af7e1a040b32af7e1a040b32
COPY --from=tests /opt/niriss-pipe/test-site /opt/niriss-pipe/test-site
COPY test-requirements.lock /opt/niriss-pipe/test-requirements.lock
COPY niriss_pipe/ /opt/niriss-pipe/test-runtime/niriss_pipe/
ENV PYTHONPATH=/opt/niriss-pipe/test-runtime:/opt/niriss-pipe/test-site
RUN /opt/env/bin/python -m pip check \
 && /opt/env/bin/python -c 'import pytest, niriss_pipe.runtime.upstream_plugin'
LABEL io.niriss-pipe.test.of="sha256:0b32af7e1a040b32af7e1a040b32af7e1a040b32af7e1a040b32af7e1a040b32" \
      io.niriss-pipe.test.lock.digest="sha256:6382728fd40e27361c46b46331c07c3c0ed7b6bf99ce368ee9dbcacd8fc86c62"
