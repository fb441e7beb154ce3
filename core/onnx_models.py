"""The models run by ONNX Runtime: exported once from their folder, cached, checked on load.

On two quiet CPU cores ONNX Runtime embeds document batches 1.8x as fast as PyTorch's eager
mode, a query in 0.3x its time and reranks in 0.57x, with the same vectors; int8 weights embed
documents 3x as fast (docs/benchmarks.md). The graph is traced by
`torch.onnx.export` from the model's own sentence-transformers modules (transformer, pooling,
normalisation; for a cross-encoder its scoring head and activation), so pooling and normalisation
are the model's configuration, not a reimplementation, then fused by ONNX Runtime's transformer
optimizer; `optimum-onnx` would do the export too but pins `transformers<4.58`.

An export lives in `<export dir>/<kind>-<key>/` where the key digests the model folder's files,
the export settings and the ONNX Runtime that fused the graph. The export dir is by default the
user's cache folder, shared by every data dir on the machine (RAG_ONNX_EXPORT_DIR), so several
deployments, the evaluation workspace, tests and benches may reach for one export at once: it is
made under a file lock into a scratch folder, renamed into place when complete, and whoever waited
on the lock finds it there. `meta.json` records the key and the graph's own SHA-256, so a
truncated or altered graph is exported again, and exports of an older state of the same folder
(stale) are removed when a new one is made. Exporting needs torch; loading a cached export does
not.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.model_digest import model_folder, model_label, weights_digest
from core.settings import Settings

log = logging.getLogger(__name__)

Kind = Literal["embedder", "cross-encoder"]
# Bumped whenever the export below changes what it writes, so older exports are not reused.
EXPORT_FORMAT = 3
OPSET = 17
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Traced with the eager attention, whose pattern ONNX Runtime's transformer optimizer fuses into
# its Attention kernel (an SDPA trace leaves attention as separate MatMul/Softmax nodes).
_EAGER = {"attn_implementation": "eager"}


_NOUNS: dict[Kind, str] = {"embedder": "embedding model", "cross-encoder": "cross-encoder"}
_SCRATCH_PREFIX = ".export-"


class ExportError(RuntimeError):
    """The model could not be exported or loaded by ONNX Runtime; the reason is the message."""


class ModelNotFoundError(ExportError):
    """No such model folder here: torch, tried next, fails too and says so in its own words."""


@dataclass(frozen=True)
class InferenceOptions:
    """How the models run: the backend, its threads, optional int8, where exports are kept."""

    backend: Literal["onnx", "torch"]
    threads: int
    quantize: Literal["int8"] | None
    export_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> InferenceOptions:
        return cls(
            settings.models.inference_backend,
            settings.models.inference_threads,
            settings.models.inference_quantize,
            settings.models.onnx_export_dir,
        )


def resolve_model_folder(model: str) -> Path:
    """A local folder as it is; a hub id from the local hub cache (nothing is downloaded)."""
    folder = model_folder(model)
    if folder is None:
        raise ModelNotFoundError(f"model {model!r} is neither a folder nor in the local hub cache")
    return folder.resolve()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def export_key(kind: Kind, folder: Path, quantize: str | None) -> str:
    """The export's identity. The ONNX Runtime version is part of it because its optimizer writes
    the fused kernels: environments of another version on the same machine keep their own."""
    settings = {"kind": kind, "format": EXPORT_FORMAT, "opset": OPSET, "quantize": quantize}
    text = json.dumps(
        {"weights": weights_digest(folder), "onnxruntime": version("onnxruntime"), **settings},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class OnnxExport:
    """A verified export: the graph, and what the export recorded about the model."""

    folder: Path  # the model folder, for its tokenizer
    graph: Path
    meta: dict[str, Any]


def ensure_export(
    kind: Kind, model: str, export_dir: Path, quantize: str | None = None
) -> OnnxExport:
    """The cached export of `model`, exported (again) when missing, corrupt or stale."""
    folder = resolve_model_folder(model)
    key = export_key(kind, folder, quantize)
    target = export_dir / f"{kind}-{key}"
    try:
        with _exclusive(export_dir):
            found = _verified(target, key)
            if found is None:
                if target.exists():
                    log.warning("ONNX export %s is corrupt or incomplete; exporting again", target)
                _remove_abandoned(export_dir)
                log.warning(
                    "exporting the %s %s to ONNX, once: every later run reuses it from %s",
                    _NOUNS[kind],
                    model_label(model),
                    export_dir,
                )
                found = _export(kind, folder, target, key, quantize)
                _remove_stale(export_dir, kind, folder, keep=target)
    except OSError as exc:
        raise ExportError(f"cannot write the ONNX export under {export_dir}: {exc}") from exc
    return OnnxExport(folder, target / "model.onnx", found)


@contextmanager
def _exclusive(export_dir: Path) -> Iterator[None]:
    """Hold the export dir's lock: processes starting together (the API and a worker, two
    deployments, tests side by side) export once, not side by side, and never see a half-made
    export or lose one under them."""
    export_dir.mkdir(parents=True, exist_ok=True)
    with (export_dir / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _remove_abandoned(export_dir: Path) -> None:
    """Scratch folders of exports that never finished: every export runs under the lock this
    process holds, so any scratch folder here belongs to a process that died exporting."""
    for scratch in export_dir.glob(f"{_SCRATCH_PREFIX}*"):
        shutil.rmtree(scratch, ignore_errors=True)


def _verified(target: Path, key: str) -> dict[str, Any] | None:
    try:
        meta = json.loads((target / "meta.json").read_text())
        graph = target / "model.onnx"
        if meta.get("key") == key and _sha256(graph) == meta.get("graph_sha256"):
            return meta
    except (OSError, ValueError):
        pass
    return None


def _remove_stale(export_dir: Path, kind: Kind, folder: Path, keep: Path) -> None:
    """Drop exports of an earlier state of the same model folder: they can never match again.

    Exports of the same weights under other settings (int8, another ONNX Runtime) are another
    deployment's on this machine, and stay."""
    weights = weights_digest(folder)
    for other in export_dir.glob(f"{kind}-*"):
        if other == keep:
            continue
        try:
            meta = json.loads((other / "meta.json").read_text())
        except (OSError, ValueError):
            meta = {}
        if meta.get("source") in (None, str(folder)) and meta.get("weights") != weights:
            shutil.rmtree(other, ignore_errors=True)


def _export(
    kind: Kind, folder: Path, target: Path, key: str, quantize: str | None
) -> dict[str, Any]:
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix=_SCRATCH_PREFIX, dir=target.parent))
    try:
        graph = scratch / "model.onnx"
        try:
            meta = _trace(kind, folder, graph)
            meta["fused"] = _fuse(graph, folder)
            if quantize == "int8":
                import onnx
                from onnxruntime.quantization import QuantType, quantize_dynamic

                fp32 = scratch / "fp32.onnx"
                graph.rename(fp32)
                # The fused kernels are outside ONNX's own domain, so shape inference cannot
                # type their outputs: they are float.
                quantize_dynamic(
                    str(fp32),
                    str(graph),
                    weight_type=QuantType.QInt8,
                    extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
                )
                fp32.unlink()
        except OSError:
            raise
        except Exception as exc:  # the exporter raises whatever the traced code raises
            raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}") from exc
        meta.update(
            key=key,
            kind=kind,
            source=str(folder),
            weights=weights_digest(folder),
            quantize=quantize,
        )
        meta["graph_sha256"] = _sha256(graph)
        (scratch / "meta.json").write_text(json.dumps(meta, indent=1))
        shutil.rmtree(target, ignore_errors=True)
        scratch.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info(
        "exported %s %s to ONNX at %s in %.1f s", kind, folder, target, time.monotonic() - started
    )
    return meta


def _trace(kind: Kind, folder: Path, graph: Path) -> dict[str, Any]:
    """Trace the model's own modules, from token ids to the vector (or score) it returns."""
    with _quiet_export():
        return _traced(kind, folder, graph)


@contextmanager
def _quiet_export() -> Iterator[None]:
    """No weight-loading progress bar, and none of the tracer's warnings: they flag Python
    branches on tensor values and index arithmetic whose trace might not generalise to other
    shapes, and the exported graph is checked against torch on batches of other shapes and
    lengths (tests/test_onnx.py). A first run printed a screenful of them."""
    import torch
    from transformers.utils import logging as transformers_logging

    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx\.")
            yield
    finally:
        if bars:
            transformers_logging.enable_progress_bar()


def _traced(kind: Kind, folder: Path, graph: Path) -> dict[str, Any]:
    import torch

    if kind == "embedder":
        from sentence_transformers import SentenceTransformer

        model: Any = SentenceTransformer(str(folder), device="cpu", model_kwargs=_EAGER)
        output, max_length = "sentence_embedding", int(model.max_seq_length)
        meta: dict[str, Any] = {"dim": int(model.get_embedding_dimension())}
        example = model.tokenizer(
            ["an example text", "a second"], padding=True, return_tensors="pt"
        )
    else:
        from sentence_transformers import CrossEncoder

        model = CrossEncoder(str(folder), device="cpu", model_kwargs=_EAGER)
        output, max_length = "scores", int(model.max_seq_length)
        meta = {"num_labels": int(model.num_labels)}
        example = model.tokenizer(
            ["a query", "another"], ["a text", "a second text"], padding=True, return_tensors="pt"
        )
    names = [n for n in _INPUTS if n in example]
    activation = getattr(model, "activation_fn", None) or torch.nn.Identity()

    class Traced(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            out = self.model(dict(zip(names, tensors, strict=True)))[output]
            if kind == "cross-encoder":
                out = activation(out)
                if out.ndim > 1 and out.shape[-1] == 1:
                    out = out.squeeze(-1)
            return out

    dynamic = {n: {0: "batch", 1: "sequence"} for n in names} | {"output": {0: "batch"}}
    with torch.inference_mode():
        torch.onnx.export(
            Traced().eval(),
            tuple(example[n] for n in names),
            str(graph),
            input_names=names,
            output_names=["output"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    return meta | {"inputs": names, "max_length": max_length}


def _fuse(graph: Path, folder: Path) -> dict[str, int]:
    """Rewrite the traced graph with ONNX Runtime's fused transformer kernels, in place.

    Fusing attention, the embedding layer norm, skip layer norms and bias-GELU cut the CPU time of
    embedding SciFact chunks by about a fifth against the unfused trace, with the same vectors
    (docs/benchmarks.md). The counts of fused operators go into the export's meta; a graph the
    optimizer cannot handle stays as traced, which is correct, only slower. A MiniLM-L6
    cross-encoder gets the same fusions as the embedder (tests/test_onnx.py counts both).
    """
    from onnxruntime.transformers.optimizer import optimize_model

    try:
        # The optimizer cannot read the attention shape off this trace: the model config says it.
        config = json.loads((folder / "config.json").read_text())
        heads, hidden = int(config["num_attention_heads"]), int(config["hidden_size"])
        optimized = optimize_model(
            str(graph), model_type="bert", num_heads=heads, hidden_size=hidden
        )
        fused = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
        optimized.save_model_to_file(str(graph))
    except Exception as exc:  # the optimizer raises whatever its pattern matchers raise
        log.warning("ONNX graph %s left unfused: %s: %s", graph, type(exc).__name__, exc)
        return {}
    return fused


class OnnxModel:
    """An ONNX Runtime session over an export, with the model's own fast tokenizer.

    `run` is safe from several threads; each caller here is one `InferenceThread`.
    """

    def __init__(self, export: OnnxExport, threads: int) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle pool threads spinning for work would take the cores from the other models' threads
        # and the engine's; they sleep instead.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(
                str(export.graph), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ExportError(f"onnxruntime could not load {export.graph}: {exc}") from exc
        self.tokenizer = AutoTokenizer.from_pretrained(str(export.folder))
        self.meta = export.meta
        self.max_length = int(export.meta["max_length"])
        self._inputs = list(export.meta["inputs"])

    def run(
        self,
        texts: Sequence[str],
        pairs_with: Sequence[str] | None = None,
        max_length: int | None = None,
    ) -> np.ndarray:
        """The model's output for one batch of texts (or of (text, pairs_with) pairs)."""
        encoded = self.tokenizer(
            list(texts),
            list(pairs_with) if pairs_with is not None else None,
            padding=True,
            truncation="longest_first",
            max_length=max_length or self.max_length,
            return_tensors="np",
        )
        feed = {n: encoded[n].astype(np.int64, copy=False) for n in self._inputs}
        return self._session.run(None, feed)[0]


def load_onnx_model(kind: Kind, model: str, options: InferenceOptions) -> OnnxModel:
    """The export's session; a graph ONNX Runtime refuses is exported once more, then given up."""
    export = ensure_export(kind, model, options.export_dir, options.quantize)
    try:
        return OnnxModel(export, options.threads)
    except ExportError as exc:
        log.warning("%s; exporting again", exc)
        with _exclusive(options.export_dir):
            shutil.rmtree(export.graph.parent, ignore_errors=True)
        return OnnxModel(
            ensure_export(kind, model, options.export_dir, options.quantize), options.threads
        )


def onnx_or_none(
    kind: Kind, model: str, inference: InferenceOptions | None
) -> tuple[OnnxModel | None, str]:
    """`model` on ONNX Runtime when `inference` asks for it; else None and why not ("" when it
    was not asked for, or the model is missing: torch, tried next, says so in its own words)."""
    if inference is None or inference.backend != "onnx":
        return None, ""
    try:
        return load_onnx_model(kind, model, inference), ""
    except ModelNotFoundError:
        return None, ""
    except ExportError as exc:
        log.warning("%s %s runs on torch: %s", kind, model, exc)
        return None, str(exc)


def length_order(lengths: Sequence[int]) -> np.ndarray:
    """Indices longest first, so each batch pads to texts of about its own length."""
    return np.argsort([-n for n in lengths], kind="stable")
