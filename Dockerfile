# One image for both roles: `a3c learner` and `a3c actor`, driven by A3C_* variables.
#   docker build -t a3c-service:0.1.0 .
# A mirrored or air-gapped site points the build at its own copies, nothing edited:
#   docker build --build-arg BASE_IMAGE=registry.local/python:3.11-slim \
#                --build-arg TORCH_INDEX=https://pypi.local/torch-cpu/ -t a3c-service:0.1.0 .
ARG BASE_IMAGE=python:3.11-slim
# checkov:skip=CKV_DOCKER_7: the base image is a build argument; its default carries a version tag
FROM ${BASE_IMAGE}

# The CPU build of torch (the default one on PyPI carries CUDA, several GB). Everything else
# comes from the package index pip is configured with (PIP_INDEX_URL for a mirror).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# Pinned by the same constraints file the README set-up and CI use.
COPY constraints.txt ./
RUN pip install -c constraints.txt --extra-index-url "${TORCH_INDEX}" torch

COPY pyproject.toml README.md ./
COPY a3c ./a3c
COPY actor ./actor
COPY learner ./learner
COPY protocol ./protocol
COPY relay ./relay
COPY rlcore ./rlcore
# With the pixel groups, so A3C_ENV=ALE/Pong-v5 or MinAtar/Breakout-v1 work in containers.
RUN pip install -c constraints.txt ".[atari,minatar]"

# A user of its own, never root. /runs is where a learner writes (a volume in compose, a
# claim in Kubernetes); HOME is /tmp so libraries' caches land on a writable mount when the
# root filesystem is read-only. Nothing uses shared memory, so a small /dev/shm is fine.
# /keys/learner and /keys/actor-1 are where compose's keygen writes: a new named volume
# takes its mount point's owner and mode from the image, and sticky and writable by all
# (like /tmp) lets keygen run as any A3C_UID; the secrets it writes there are 0600.
RUN groupadd --gid 10001 a3c && useradd --uid 10001 --gid 10001 --no-create-home \
        --home-dir /tmp --shell /usr/sbin/nologin a3c \
    && mkdir /runs && chown a3c:a3c /runs \
    && mkdir -p /keys/learner /keys/actor-1 && chmod 1777 /keys/learner /keys/actor-1
ENV HOME=/tmp MPLCONFIGDIR=/tmp
USER 10001:10001
# checkov:skip=CKV_DOCKER_2: one image serves two roles (learner, actor) with no common
# health endpoint; the deployments probe the learner with `a3c status` and actors need none.
ENTRYPOINT ["a3c"]
CMD ["--help"]
