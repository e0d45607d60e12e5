# CPU image of the bot (embedded default; or any config with --config). Not built on the
# development machines (no Docker there). Build: docker build -t rs-capret .
# Run:   docker run -e TELEGRAM_BOT_TOKEN=... -v capret-data:/app/data rs-capret
FROM python:3.11-slim
RUN apt-get update -q && apt-get install -y -q --no-install-recommends make default-jre-headless \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 capret \
    && mkdir -p /checkpoint && chown capret:capret /checkpoint
WORKDIR /app
COPY --chown=capret:capret . .
USER capret
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 CAPRET_CACHE_DIR=/home/capret/.cache/rs-capret
# The venv, the embedded weights converted once into CAPRET_CACHE_DIR (`capret models prepare`).
RUN make install PYTHON=python3.11 && mkdir -p /app/data
# /checkpoint: where deploy/compose.gpu.yaml's export service writes the vLLM checkpoint.
# The database (SQLite unless CAPRET_DATABASE_URL is set), image blobs and the gallery index.
VOLUME ["/app/data"]
# `capret doctor` exits non-zero when weights, bridge, database, gallery or a vLLM server is missing.
HEALTHCHECK --interval=5m --timeout=60s --start-period=2m \
    CMD ["/app/.venv/bin/capret", "doctor"]
# TELEGRAM_BOT_TOKEN (and optionally CAPRET_DATABASE_URL, CAPRET_VLLM_API_KEY) come from the
# environment at run time; CAPRET_CONFIG picks another shipped config (configs/*.yaml).
ENV CAPRET_CONFIG=configs/default.yaml
CMD ["sh", "-c", "exec /app/.venv/bin/capret --config \"$CAPRET_CONFIG\" run"]
