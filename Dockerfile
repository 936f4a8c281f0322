# reconciler in a container: the command line of this checkout, for CI runners and long-running
# services that run it on a schedule.
#
#   docker build -t reconciler .
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/specs:/specs" \
#     -e MISTRAL_API_KEY -e RECONCILER_PG_DSN reconciler plan
#
# The specs are mounted at /specs (the working directory); reconciler writes its caches, and
# with the file backend its state, under /specs/.reconciler, so run as the owner of the mounted
# directory (--user) or give the image's user write access to it. Keys come from the
# environment (-e NAME passes the caller's value): never bake them into the image.
#
# As a long-lived service, continuous reconcile (README, "Continuous reconcile"): it starts
# validated jobs and names models every round, reports the rest, and stops cleanly on the
# SIGTERM of `docker stop` (the process is PID 1 and handles it):
#
#   docker run -d --restart unless-stopped --stop-timeout 60 --user "$(id -u):$(id -g)" \
#     -v "$PWD/specs:/specs" -e MISTRAL_API_KEY -e RECONCILER_PG_DSN reconciler reconcile --interval 10m
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package needs to build; the rest of the checkout stays out of the image.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
# The PostgreSQL extra: the state backend for more than one machine. The checks fail the
# build if the package is not installed under its distribution name or has no command.
RUN pip install '.[postgres]' \
    && pip show finetune-reconciler > /dev/null \
    && reconciler --version \
    && rm -rf /src

# An unprivileged user runs the tool.
RUN useradd --create-home --uid 10001 reconciler
USER reconciler
WORKDIR /specs

ENTRYPOINT ["reconciler"]
CMD ["--help"]
