# The one image of every notify role (docker-compose.yml builds it once).
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY notify ./notify
COPY api ./api
COPY sinks ./sinks
COPY workers ./workers
RUN pip install --no-cache-dir '.[server]'
USER nobody
CMD ["notify", "serve", "--host", "0.0.0.0", "--port", "8000"]
