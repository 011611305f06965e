# One image for the API and the worker (docker-compose.yml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini worker.py ./
COPY core core
COPY workflows workflows
COPY activities activities
COPY api api
COPY migrations migrations
COPY packs packs
COPY scripts scripts
COPY bench bench
RUN pip install . && useradd --system --uid 10001 trellis
USER trellis
EXPOSE 8000
CMD ["python", "worker.py"]
