# quantfleet image shared by the Ray head and workers of deploy/compose.yaml (and usable as the
# KubeRay image): the project with its Ray, state, pipeline, portfolio and data extras.
#   docker build -t quantfleet:latest .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    NUMBA_CACHE_DIR=/tmp/numba-cache

WORKDIR /opt/quantfleet
# metadata first so the dependency layer is cached across source edits
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[ray,state,pipeline,portfolio,data]" \
    && useradd --create-home --uid 1000 ray \
    && mkdir -p /tmp/numba-cache && chown ray /tmp/numba-cache

USER ray
WORKDIR /home/ray
# GCS, dashboard, Ray client, Ray metrics, quantfleet metrics
EXPOSE 6380 8265 10001 8080 9464
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s \
    CMD python -c "import quantfleet" || exit 1
CMD ["quantfleet", "--help"]
