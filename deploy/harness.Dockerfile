# The gpuchaos harness image: the whole CLI (gpuchaos run, gameday, drill, history, ...)
# with the experiment catalog and the game-day plans, for running the harness itself in a
# cluster (deploy/kubernetes/gameday-cronjob.yaml). The workload runs in its own image
# (workloads/Dockerfile) on the GPU nodes; the harness needs no GPU, so torch is the CPU
# build (the harness never imports it; the local platform's replicas would).
#
#   docker build -f deploy/harness.Dockerfile -t ghcr.io/gpuchaos/harness:0.1.0 .
#
# Build from the repository root. Not built here: the development machine has no Docker
# engine; tests/unit/test_deploy_images.py checks what it copies and runs.
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/gpuchaos
COPY pyproject.toml README.md ./
COPY harness/ harness/
COPY workloads/ workloads/
COPY experiments/ experiments/
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.1" \
 && pip install -e . \
 && gpuchaos --version \
 && gpuchaos validate experiments/k8s-gpu-node-drain.yaml

RUN useradd --uid 10001 --create-home gpuchaos
USER 10001
ENTRYPOINT ["gpuchaos"]
