"""Zero-downtime rebuilds: a new index generation beside the served one, then an atomic switch.

When the configured fingerprint (`core.generation`) differs from the served generation's, a new
shard is built under `data_dir/generations/<fingerprint id>/` through the normal ingestion path
(the bucket scanner and the document syncer, with the configured model and chunker, its own
manifest beside it) while the served generation keeps answering every search. The embedding cache
is keyed by (model, chunk hash), so a chunking-only change embeds only chunk texts never seen
under the model, and a model change keeps the chunks and embeds them all once.

The rebuild advances in steps of whole batches, each one durable: a crash resumes from what the
new generation's own manifest and index hold, and `serving.json` names the old generation until
the switch. The switch happens once a scan of the bucket against the new generation finds nothing
left to do: the new shard's vector index is built (in a separate process, so searches never wait
for it), `serving.json` is replaced in one rename, the served generation's documents in the main
manifest are replaced by the new one's, and the old shard is deleted after a grace period.
What is kept per generation beside the index (the knowledge graph, which names chunk point ids)
reaches the rebuild as `core.listeners.GenerationCompanion`s from the composition root: each is
built by its listeners during the rebuild and switched right after the index.

A server collection is rebuilt the same way, into a physical collection of its own behind the
configured alias (`core.index.server`), with its manifest under generations/ as well; the switch
moves the alias and the old collection is dropped after the grace period.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.embedding import CachedEmbedder, Embedder
from core.generation import (
    GENERATION_META,
    GENERATIONS_DIR,
    REBUILD_META,
    VECTOR_INDEX_META,
    Fingerprint,
    generation_shard,
    serve,
)
from core.index import ChunkIndex, open_index
from core.index.schema import TextIndexConfig
from core.index.server import ServerIndex, generation_collections, physical_collection
from core.listeners import DocumentListener, GenerationBuild, GenerationCompanion
from core.manifest import Manifest, generation_namespace
from core.model_digest import model_digest
from core.runtime import Runtime
from core.serving import Generation
from core.settings import Settings
from ingest.bucket import Bucket
from ingest.chunking import CHUNKER_VERSION
from ingest.documents import DocumentBuilder
from ingest.parsers import PARSER_VERSION
from ingest.scan import BucketScanner, DeleteGuard, ScanPlan, execute
from ingest.sync import DocumentSyncer

log = logging.getLogger(__name__)
# Where a release before manifest namespaces kept a generation's records, beside its shard.
GENERATION_MANIFEST = "manifest.sqlite"


def configured_fingerprint(settings: Settings, embedder: Embedder) -> Fingerprint:
    """What a point made now, with these settings and this model, would be made of."""
    text = TextIndexConfig.from_settings(settings.index)
    return Fingerprint(
        embedding_model=settings.models.embedding_model,
        weights_digest=model_digest(settings.models.embedding_model),
        dim=embedder.dim,
        query_prefix=settings.models.query_prefix,
        chunk_size=settings.ingest.chunk_size or embedder.max_tokens,
        chunk_overlap=settings.ingest.chunk_overlap,
        chunker_version=CHUNKER_VERSION,
        parser_version=PARSER_VERSION,
        bm25_lowercase=text.lowercase,
        bm25_ascii_folding=text.ascii_folding,
        bm25_stemmer=text.stemmer,
        bm25_stopwords=text.stopwords,
        embedding_quantize=embedder.quantize,
    )


def served_fingerprint(runtime: Runtime) -> Fingerprint:
    """The served generation's fingerprint, also kept in the main manifest for status.

    An index made before fingerprints (or a new, empty one) is stamped with the configured one:
    nothing better is known about it. A crash between a switch's two writes leaves the main
    manifest describing the old generation; it is brought in line here from the new one's.
    """
    record = runtime.index.generation_record()
    if record is None:
        configured = configured_fingerprint(runtime.settings, runtime.configured_model())
        record = configured.to_record()
        runtime.index.set_generation_record(record)
    manifest = runtime.manifest
    if (manifest.get_meta(GENERATION_META) or {}).get("id") != record["id"]:
        generation = runtime.served_generation()
        built = None if generation is None else generation_manifest(runtime, generation)
        try:
            if built is not None and not built.is_empty():
                manifest.take_documents(built, {GENERATION_META: record})
                log.info("finished the interrupted switch to index generation %s", record["id"])
            else:
                manifest.set_meta(GENERATION_META, record)
        finally:
            if built is not None:
                built.close()
    return Fingerprint.from_record(record)


def generation_manifest(runtime: Runtime, fingerprint_id: str) -> Manifest:
    """The records of the generation with this fingerprint, in its namespace of the manifest.

    A generation that a release before namespaces was building kept them in a file beside its
    shard: they move into the namespace the first time it is opened, and the file goes.
    """
    manifest = Manifest.open(runtime.settings, generation_namespace(fingerprint_id))
    folder = runtime.settings.data_dir / GENERATIONS_DIR / fingerprint_id
    legacy = folder / GENERATION_MANIFEST
    if legacy.exists():
        kept = Manifest.at(legacy)
        try:
            manifest.put(*kept.all().values())
        finally:
            kept.close()
        for leftover in folder.glob(f"{GENERATION_MANIFEST}*"):
            leftover.unlink()
    return manifest


@dataclass
class RebuildProgress:
    """What status shows of a rebuild: documents the new generation holds of the bucket's."""

    target: str  # the new generation's fingerprint id
    served: str
    changed: list[str]  # fingerprint fields that differ
    done: int = 0
    total: int = 0
    embedded: int = 0  # chunk texts sent to the model
    reused: int = 0  # chunk vectors found in the embedding cache
    started_at: float = 0.0
    finished_at: float = 0.0
    switched: bool = False

    @property
    def seconds(self) -> float:
        return (self.finished_at or time.time()) - self.started_at


def reconcile_generation(runtime: Runtime) -> tuple[Fingerprint, Fingerprint]:
    """(the served generation's fingerprint, the configured one), with the manifest brought in
    line with the index first: a new index stamped, an interrupted switch finished
    (`served_fingerprint`), and, when the two match, the progress of a rebuild that never
    switched forgotten, since it was towards a configuration since reverted and status would
    show it forever. Every process that opens the platform to write calls it (ingestion, the
    rebuild task, `rag reindex`)."""
    served = served_fingerprint(runtime)
    configured = configured_fingerprint(runtime.settings, runtime.configured_model())
    if served.id == configured.id:
        rebuild = runtime.manifest.get_meta(REBUILD_META)
        if rebuild is not None and not rebuild["switched"]:
            runtime.manifest.delete_meta(REBUILD_META)
    return served, configured


def needs_rebuild(runtime: Runtime) -> bool:
    """Whether the configuration asks for another generation than the served one, once the
    manifest is in line (`reconcile_generation`)."""
    served, configured = reconcile_generation(runtime)
    return served.id != configured.id


class Rebuild:
    """One rebuild towards the configured fingerprint, in the process that owns the served index.

    `step` syncs up to `max_docs` documents into the new generation and returns the progress;
    once the new generation holds every document, `step` switches to it.
    """

    def __init__(
        self, runtime: Runtime, bucket: Bucket, companions: Sequence[GenerationCompanion] = ()
    ) -> None:
        s = runtime.settings
        self._runtime = runtime
        self._companions = list(companions)
        self._bucket = bucket
        self._model = runtime.configured_model()
        self.fingerprint = configured_fingerprint(s, self._model)
        self.shard = generation_shard(s.data_dir, self.fingerprint.id)
        served = served_fingerprint(runtime)
        self.progress = RebuildProgress(
            target=self.fingerprint.id,
            served=served.id,
            changed=self.fingerprint.differences(served),
            started_at=time.time(),
        )
        self._index: ChunkIndex | None = None
        self._manifest: Manifest | None = None
        self._builds: list[GenerationBuild] = []  # the companions' data for the new generation
        self._listeners: list[DocumentListener] = []
        self._plan = ScanPlan()  # what is left of the last scan against the new generation
        self._drop_abandoned()

    def _drop_abandoned(self) -> None:
        """Half-built generations of configurations no longer wanted: never served, never used."""
        s = self._runtime.settings
        served = self._runtime.served_generation()
        keep = {self.shard.parent, s.data_dir / GENERATIONS_DIR / str(served)}
        self._runtime.manifest.drop_other_generations(generation_namespace(self.fingerprint.id))
        if s.index.mode == "server":
            server = self._served_server_index()
            for name in generation_collections(server.client, s.index.collection):
                if name not in (server.collection, self.collection):
                    log.info("removing abandoned index collection %s", name)
                    server.client.delete_collection(name)
        for folder in (s.data_dir / GENERATIONS_DIR).glob("*"):
            if folder not in keep:
                log.info("removing abandoned index generation %s", folder.name)
                for companion in self._companions:  # which may live elsewhere (Redis)
                    companion.drop(folder.name)
                shutil.rmtree(folder, ignore_errors=True)

    @property
    def collection(self) -> str:
        """The new generation's physical collection behind the alias (server mode)."""
        return physical_collection(self._runtime.settings.index.collection, self.fingerprint.id)

    def _served_server_index(self) -> ServerIndex:
        served = self._runtime.serving.current.index
        assert isinstance(served, ServerIndex)
        return served

    def _open_index(self) -> ChunkIndex:
        """Edge: the generation's shard folder; server: its collection on the served client."""
        if self._runtime.settings.index.mode == "server":
            return self._served_server_index().sibling(self.collection, self._model.dim)
        return open_index(self._runtime.settings, self._model.dim, self.shard)

    def _open(self) -> tuple[ChunkIndex, Manifest]:
        if self._index is None or self._manifest is None:
            self._index = self._open_index()
            if self._index.generation_record() is None:
                self._index.set_generation_record(self.fingerprint.to_record())
            self._manifest = generation_manifest(self._runtime, self.fingerprint.id)
            if not self._builds:
                self._builds = [c.build(self.fingerprint.id) for c in self._companions]
                self._listeners = [lst for b in self._builds for lst in b.listeners]
            self._carry_tombstones(self._index, self._manifest)
        return self._index, self._manifest

    def _carry_tombstones(self, index: ChunkIndex, manifest: Manifest) -> None:
        """The served generation's API deletes hold in the new one: a tombstone whose version the
        new generation holds (or has not synced yet) replaces its record there and its points go.

        Done when the generation opens, so its syncer leaves those objects alone, and again at
        the switch, for deletes made while it was built. A document whose content changed since
        its delete is left as the new generation indexed it, as a scan of the served one would.
        """
        for doc_id, tombstone in self._runtime.manifest.all().items():
            if not tombstone.tombstone:
                continue
            built = manifest.get(doc_id)
            if built is not None and built.content_hash != tombstone.content_hash:
                continue
            if tombstone.scope is not None:
                index.delete_document(tombstone.scope, doc_id)
            manifest.put(tombstone)

    def _syncer(self, index: ChunkIndex, manifest: Manifest) -> DocumentSyncer:
        s = self._runtime.settings
        return DocumentSyncer(
            self._bucket,
            index,
            manifest,
            CachedEmbedder(self._model, self._runtime.embedding_cache),
            DocumentBuilder.served(s, self._model),
            s.ingest.max_file_bytes,
            s.default_tenant,
            self._listeners,
        )

    def step(self, max_docs: int) -> RebuildProgress:
        """Sync the next `max_docs` documents of the plan; with none left, scan the bucket again
        (catching what changed meanwhile) and switch if that finds nothing to do."""
        index, manifest = self._open()
        p = self.progress
        if not self._plan.total_work:
            # It deletes from the new generation whatever the bucket no longer holds, however
            # much: the served generation's scans are the ones that hold mass deletes back.
            keep_nothing_back = DeleteGuard(1.0, 0, self._runtime.settings.default_tenant)
            self._plan = BucketScanner(self._bucket, manifest, index, keep_nothing_back).plan()
            p.total = len(self._plan.to_sync) + self._plan.unchanged
            p.done = self._plan.unchanged
            if not self._plan.total_work:
                self._switch(index, manifest)
                return p
        plan = self._plan
        batch = ScanPlan(plan.to_sync[:max_docs], plan.to_delete[:max_docs], sidecars=plan.sidecars)
        batch.to_delete = batch.to_delete[: max(0, max_docs - len(batch.to_sync))]
        plan.to_sync = plan.to_sync[len(batch.to_sync) :]
        plan.to_delete = plan.to_delete[len(batch.to_delete) :]
        points_before = index.count()
        summary = execute(
            batch, self._syncer(index, manifest), self._runtime.settings.ingest.batch_docs
        )
        p.done += summary.added + summary.modified + summary.failed
        p.embedded += summary.chunks_embedded
        p.reused += max(0, index.count() - points_before - summary.chunks_embedded)
        self._runtime.manifest.set_meta(REBUILD_META, asdict(p))
        return p

    def run(self, max_docs: int = 256, on_step: Any = None) -> RebuildProgress:
        """Step until switched; `on_step(progress)` after each step (the CLI's progress bar)."""
        while not self.progress.switched:
            self.step(max_docs)
            if on_step is not None:
                on_step(self.progress)
        return self.progress

    def _switch(self, index: ChunkIndex, manifest: Manifest) -> None:
        """Build the vector index, then serve the new generation; the old one is removed later."""
        rt = self._runtime
        self._carry_tombstones(index, manifest)
        index.optimize()
        records = manifest.all()
        tenants = {r.scope.tenant_id for r in records.values() if r.scope is not None}
        for build in self._builds:
            build.prepare(tenants)
        old_shard, old_generation = rt.served_shard(), rt.served_generation()
        old_index = rt.serving.current.index
        retire_companions: list[Callable[[], None]] = []  # filled right after the index switch
        if rt.settings.index.mode == "server":
            assert isinstance(index, ServerIndex)
            index.serve_as(rt.settings.index.collection)
        else:
            serve(rt.settings.data_dir, self.shard)
        metas = {
            GENERATION_META: self.fingerprint.to_record(),
            VECTOR_INDEX_META: index.vector_status(),
        }
        rt.manifest.take_documents(manifest, metas)
        manifest.close()
        self._manifest = None

        def retire() -> None:
            if isinstance(old_index, ServerIndex):
                old_index.drop()
                if old_generation is not None:
                    shutil.rmtree(rt.settings.data_dir / GENERATIONS_DIR / old_generation, True)
            else:
                _remove_shard(old_shard)
            for retire_companion in retire_companions:
                retire_companion()

        rt.serving.switch(Generation(index, self._model), retire)
        retire_companions += [build.serve() for build in self._builds]
        self._index = None
        self._builds = []
        self.progress.switched = True
        self.progress.finished_at = time.time()
        self.progress.done = self.progress.total
        rt.manifest.set_meta(REBUILD_META, asdict(self.progress))
        log.info(
            "switched to index generation %s (%d documents); the old one is removed shortly",
            self.fingerprint.id,
            len(records),
        )

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
        if self._manifest is not None:
            self._manifest.close()
        for build in self._builds:
            build.close()


def _remove_shard(shard: Path) -> None:
    """Delete a retired generation: its folder under generations/, or a shard from before
    generations with its versions, record and lock beside it."""
    if shard.parent.parent.name == GENERATIONS_DIR:
        shutil.rmtree(shard.parent, ignore_errors=True)
        return
    for entry in [shard, *shard.parent.glob(f"{shard.name}.*")]:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
