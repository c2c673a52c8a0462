# qqwatchdog: the watchdog supervising one QQ bot's gateway worker, in a container.
#   docker build -t qqwatchdog .
#   docker run -d --name mybot --env-file bot.env -p 127.0.0.1:9108:9108 qqwatchdog
# bot.env holds QQ_APP_ID and QQ_APP_SECRET (and QQ_HANDLER=module:function for your own handler: build
# FROM this image and COPY your module into /srv/qqwatchdog). The README ("Monitoring") has the details.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 qqbot \
    && useradd --system --uid 10001 --gid qqbot --home-dir /srv/qqwatchdog --no-create-home qqbot

WORKDIR /srv/qqwatchdog
COPY pyproject.toml README.md ./
COPY qqworker ./qqworker
COPY watchdog ./watchdog
# The project's own layout: its .venv beside the code, a plain (non-editable) install; ./run for the status file.
RUN python -m venv /srv/qqwatchdog/.venv \
    && /srv/qqwatchdog/.venv/bin/pip install --no-compile . \
    && mkdir -p /srv/qqwatchdog/run \
    && chown qqbot:qqbot /srv/qqwatchdog/run

# 0.0.0.0 is the container's own network namespace: nothing is reachable from outside unless published
# (-p) or probed by the orchestrator (Kubernetes probes the pod's address, not its loopback).
ENV PATH=/srv/qqwatchdog/.venv/bin:$PATH \
    QQW_HTTP=0.0.0.0:9108 \
    QQW_STATUS_FILE=/srv/qqwatchdog/run/qqwatchdog.status.json

# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 9108
# Healthy = ready: the worker is connected, beating, and its gateway ACKs are fresh (GET /readyz is 200;
# a 503 raises, so the exit code is 1). `qqwatchdog status` is the alternative without --http.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9108/readyz', timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["qqwatchdog", "run"]
