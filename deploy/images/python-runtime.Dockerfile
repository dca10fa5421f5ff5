# syntax=docker/dockerfile:1
# The Python model runtime the container-manager's kubernetes backend runs model versions in
# (deploy/kubernetes: CLIPPER_MODEL_IMAGE). Its paths are what the backend's launch expects
# (DEFAULT_KUBERNETES_OPTIONS.imagePaths in services/container-manager/backends/kubernetes-backend.ts):
# the SDK at /opt/clipper/sdk/python/src, `python3` on PATH, the data directory /var/lib/clipper.
# Build from the repository root (python-runtime.Dockerfile.dockerignore keeps the context small):
#   docker build -f deploy/images/python-runtime.Dockerfile -t REGISTRY/clipper/model-runtime:TAG .
# A closure's own packages: --build-arg MODEL_PACKAGES="scikit-learn==1.9.1 pandas==..." (or FROM this image).
# Not built or run on the development machines (no container engine, no registry): docs/kubernetes.md.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: a virtual environment with the runtime's dependencies (versions of sdk/python/requirements-dev.txt).
FROM ${PYTHON_IMAGE} AS build
ARG MODEL_PACKAGES=""
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir --disable-pip-version-check \
      grpcio==1.85.1 grpcio-health-checking==1.85.1 protobuf==7.36.2 cloudpickle==3.1.2 numpy==2.4.6 \
      prometheus-client==0.26.0 ${MODEL_PACKAGES}
COPY sdk/python/src /opt/clipper/sdk/python/src
# Fails the build if the runtime cannot import with these packages.
RUN PYTHONPATH=/opt/clipper/sdk/python/src python3 -c "import clipper_runtime.closure_runner"

# --- runtime: the interpreter, the venv and the SDK's sources; no pip cache, no build tools.
FROM ${PYTHON_IMAGE} AS runtime
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/clipper/sdk/python/src /opt/clipper/sdk/python/src
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/clipper/sdk/python/src \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
RUN mkdir -p /var/lib/clipper/artifacts && chown -R 10001:10001 /var/lib/clipper
USER 10001:10001
WORKDIR /var/lib/clipper
# The backend passes CLIPPER_MODEL_PORT (7000) and CLIPPER_MODEL_HOST=0.0.0.0, and the command.
EXPOSE 7000
CMD ["python3", "-m", "clipper_runtime.closure_runner"]
