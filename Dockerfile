# CPU image of the embedded default. Build: docker build -t rs-capret .
FROM python:3.11-slim
RUN apt-get update -q && apt-get install -y -q --no-install-recommends make default-jre-headless \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN make install PYTHON=python3.11
ENV HF_HUB_OFFLINE=1
# TELEGRAM_BOT_TOKEN (and optionally CAPRET_DATABASE_URL) come from the environment at run time.
CMD ["make", "run"]
