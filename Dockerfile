# cardtrace production image: one image for web, worker and beat.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CARDTRACE_ENV=production \
    CARDTRACE_INSTANCE=/var/lib/cardtrace \
    CARDTRACE_KEY_DIR=/run/secrets/cardtrace

RUN groupadd --system cardtrace && useradd --system --gid cardtrace --home /var/lib/cardtrace cardtrace \
    && mkdir -p /var/lib/cardtrace && chown cardtrace:cardtrace /var/lib/cardtrace

WORKDIR /app
COPY pyproject.toml README.md ./
COPY provenance ./provenance
COPY merchant_onboarding ./merchant_onboarding
COPY webapp ./webapp
RUN pip install .

USER cardtrace
EXPOSE 8000
ENTRYPOINT ["cardtrace"]
CMD ["serve", "--bind", "0.0.0.0:8000", "--workers", "4"]
