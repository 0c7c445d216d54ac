# One image for both roles: `a3c learner` and `a3c actor`, driven by A3C_* variables.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# The CPU build of torch (the default one on PyPI carries CUDA, several GB), pinned by the
# same constraints file the README set-up and CI use.
COPY constraints.txt ./
RUN pip install -c constraints.txt --extra-index-url https://download.pytorch.org/whl/cpu torch

COPY pyproject.toml README.md ./
COPY a3c ./a3c
COPY actor ./actor
COPY learner ./learner
COPY protocol ./protocol
COPY rlcore ./rlcore
# With the pixel groups, so A3C_ENV=ALE/Pong-v5 or MinAtar/Breakout-v1 work in containers.
RUN pip install -c constraints.txt ".[atari,minatar]"

# Nothing here uses shared memory between processes, so Docker's small /dev/shm is fine.
# Runs as the image's default user so bind-mounted ./runs and ./keys (owned by the host
# user, secrets mode 0600) are writable and readable without uid juggling.
RUN mkdir /runs
ENTRYPOINT ["a3c"]
CMD ["--help"]
