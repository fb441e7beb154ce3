# The platform's image: the API (`rag serve`), workers (`rag worker`) and beat all run from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false RAG_DATA_DIR=/data \
    RAG_ONNX_EXPORT_DIR=/data/onnx

WORKDIR /app
# The CPU build of torch first: a bare `torch` requirement would pull the CUDA wheels.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY core core
COPY ingest ingest
COPY retrieval retrieval
COPY graph graph
COPY eval eval
COPY workers workers
COPY api api
COPY cli cli
COPY serving serving
# Every extra by default; a slimmer image leaves out what it does not run, e.g. an API or worker
# image without evaluation or S3: `docker build --build-arg EXTRAS=deploy .` (see README).
ARG EXTRAS=deploy,s3,eval,postgres
RUN pip install ".[${EXTRAS}]"

# Models come from a mounted cache (HF_HOME) or a folder named by RAG_EMBEDDING_MODEL and
# RAG_RERANKER_MODEL; nothing is fetched at run time.
VOLUME ["/data"]
EXPOSE 8000
CMD ["rag", "serve", "--host", "0.0.0.0", "--port", "8000"]
