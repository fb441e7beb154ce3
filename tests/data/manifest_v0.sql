-- The manifest as release 025775f (before schema versions) wrote it: a dump made by that code.
BEGIN TRANSACTION;
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY, tenant_id , source , status , size , mtime , etag , sidecar , content_hash , meta_hash , chunk_ids , error , attempts , updated_at 
);
INSERT INTO "documents" VALUES('notes/a.md','default','file:///b/notes/a.md','indexed',12,1700000000.5,'e1','','cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc','','["id-1", "id-2"]','',0,1700000001.0);
INSERT INTO "documents" VALUES('tenants/acme/bad.pdf','acme','file:///b/tenants/acme/bad.pdf','failed',99,1700000002.0,'','','','','[]','corrupt PDF: EOF marker not found',3,1700000003.0);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "meta" VALUES('last_scan','{"listed": 3}');
CREATE TABLE pending (
    doc_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, status TEXT NOT NULL, task_id TEXT NOT NULL,
    since REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT ''
);
INSERT INTO "pending" VALUES('notes/b.md','default','queued','task-1',1.79617382923941373831e+09,0,'');
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, summary TEXT NOT NULL);
INSERT INTO "runs" VALUES(1,'{"added": 1, "modified": 0, "deleted": 0, "unchanged": 0, "failed": 1, "chunks_embedded": 0, "started_at": 1700000000.0, "finished_at": 1700000004.0, "planned": 0, "completed": 0}');
CREATE INDEX documents_tenant ON documents (tenant_id, status);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('runs',1);
COMMIT;
