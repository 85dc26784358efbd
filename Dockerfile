# emingest in a container: `docker build -t emingest .`, then `docker run --rm emingest --help`.
# Two stages: the first builds a virtual environment (pip, a compiler-free wheel install), the
# second copies only that environment into a slim image and runs it as an unprivileged user.
# EXTRAS picks the optional parts: postgres (catalog.url, the pgvector index), dask (the
# workers and the scheduler) and s3 (an s3:// data root); the API server and the embedders are core dependencies.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=postgres,dask,s3
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY src ./src
RUN python -m venv /opt/emingest \
    && /opt/emingest/bin/pip install -c constraints.txt ".[${EXTRAS}]"

FROM ${PYTHON_IMAGE} AS runtime
# An unprivileged user with a fixed id, so volumes mounted from the host can be chowned to it.
RUN useradd --create-home --uid 10001 --user-group emingest
COPY --from=build /opt/emingest /opt/emingest
ENV PATH=/opt/emingest/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    EMINGEST_STORAGE__DATA_ROOT=/data \
    EMINGEST_LOGGING__LOG_DIR=/data/logs
# /data: a local data root; /work: the local work folder of an s3:// data root (locks, logs,
# download caches), a named volume in compose.yaml that Docker seeds with this ownership
RUN mkdir /data /work && chown emingest:emingest /data /work
VOLUME ["/data"]
USER emingest
WORKDIR /home/emingest
ENTRYPOINT ["emingest"]
CMD ["--help"]
