-- The API key store as release 025775f (before schema versions) wrote it. The key's token, for
-- the upgrade test only: rag_81cf247b8e13_KEHBKjgb5shdBtTGarZHGUVPaU6eh-t2-8aXwIJVKbc
BEGIN TRANSACTION;
CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    revoked_at REAL
);
INSERT INTO "api_keys" VALUES('81cf247b8e13','acme','reader','218779369e6fc72c3ecb0f60949a211aff3bd7a8f615a2679d403ee74b414bcb','ci reader',1.79617382928936314585e+09,NULL);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);
COMMIT;
