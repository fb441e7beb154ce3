"""`rag models export`: the ONNX exports made ahead of time instead of on first use.

Registered in cli/main.py with `app.add_typer(models_app, name="models")`.
"""

from __future__ import annotations

import typer
from rich.console import Console

from core.settings import get_settings

models_app = typer.Typer(help="The models' ONNX exports.")
console = Console()


@models_app.command("export")
def export() -> None:
    """Export the models to ONNX ahead of first use.

    The embedding model and the reranker, to RAG_ONNX_EXPORT_DIR (kept ones are reused; by
    default the user's cache folder, which every data dir on the machine shares).

    Exits 1 when the embedding model cannot be exported; a reranker that is not installed
    locally is reported and skipped, as the API would skip it.
    """
    from core.onnx_models import ExportError, ensure_export

    settings = get_settings()
    quantize = settings.models.inference_quantize
    targets = [
        ("embedder", settings.models.embedding_model),
        ("cross-encoder", settings.models.reranker_model),
    ]
    failed = False
    for kind, model in targets:
        try:
            done = ensure_export(kind, model, settings.models.onnx_export_dir, quantize)
            console.print(f"{kind} {model}: {done.graph}")
        except ExportError as exc:
            failed = failed or kind == "embedder"
            console.print(f"[yellow]{kind} {model}: not exported: {exc}")
    if failed:
        raise typer.Exit(1)
