# The gpuchaos load image: Locust with the harness's locustfile, for Locust as Kubernetes
# Jobs (harness.load.k8s_jobs.KubernetesLoadJobs: a master Job and an indexed worker Job).
# No GPU and no torch: only the harness package and its load dependencies.
#
#   docker build -f workloads/load.Dockerfile -t ghcr.io/gpuchaos/load:0.1.0 .
#
# Build from the repository root. This file has not been built here: the development machine
# has no Docker engine.
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/gpuchaos
COPY pyproject.toml README.md ./
COPY harness/ harness/
COPY workloads/ workloads/
RUN pip install --no-deps -e . \
 && pip install "locust>=2.20" "pydantic>=2.6" "pyyaml>=6" \
 && python -c "import locust, harness.load.workerenv, harness.load.rowbatch"

RUN useradd --uid 10001 --create-home gpuchaos
USER 10001
