-- Admin API bearer tokens, stored as their SHA-256 only (they carry 256 random
-- bits); revoked tokens are kept for the record.
CREATE TABLE admin_tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- Audit queries across orgs (newest first) and the retention purge.
CREATE INDEX audit_tokens_iat ON audit_tokens (iat);
