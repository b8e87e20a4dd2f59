# The module server (`waddlebot-lambda serve`) as a container: slim Python, a non-root user,
# configuration from a mounted TOML file and the environment. See docs/server.md, "Containers".
#
#   docker build -t waddlebot-lambda-modules .
#   docker run -p 8000:8000 -v "$PWD/modules.toml:/etc/waddlebot/modules.toml:ro" \
#     -e SERVICE_API_KEY -e AWS_REGION -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY \
#     waddlebot-lambda-modules

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# The redis and prometheus extras: shared state across replicas and GET /metrics. DL3013 asks
# for pinned versions: this is the project's own source; its dependencies are pinned by range
# in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --prefix=/install ".[redis,prometheus]"

FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=build /install /usr/local
RUN useradd --system --no-log-init --uid 10001 --no-create-home --shell /usr/sbin/nologin waddlebot
USER 10001
EXPOSE 8000
# Liveness on /health (no key needed): 503 (a module unhealthy, or draining) fails the check.
# The port is the server's default; change both together.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["waddlebot-lambda", "--log-level", "INFO", "serve"]
CMD ["--config", "/etc/waddlebot/modules.toml"]
