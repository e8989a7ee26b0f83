# cardtrace production image: one image for web, worker and beat.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CARDTRACE_ENV=production \
    CARDTRACE_INSTANCE=/var/lib/cardtrace \
    CARDTRACE_KEY_DIR=/run/secrets/cardtrace

# A CJK font for the Chinese text of evidence-package reports.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system cardtrace && useradd --system --gid cardtrace --home /var/lib/cardtrace cardtrace \
    && mkdir -p /var/lib/cardtrace && chown cardtrace:cardtrace /var/lib/cardtrace

WORKDIR /app
COPY pyproject.toml README.md ./
COPY provenance ./provenance
COPY merchant_onboarding ./merchant_onboarding
COPY webapp ./webapp
# The pages' translations are compiled before the package is installed, so they ship in it.
RUN pip install "babel>=2.14" && pybabel compile -d webapp/translations && pip install .

USER cardtrace
EXPOSE 8000
ENTRYPOINT ["cardtrace"]
CMD ["serve", "--bind", "0.0.0.0:8000", "--workers", "4"]
