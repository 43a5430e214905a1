-- nomos-issuer schema, version 1 (SQLite).
-- Times are integer Unix seconds, the unit of every JWT time claim.

CREATE TABLE orgs (
    id              TEXT PRIMARY KEY,
    audiences       TEXT NOT NULL,            -- JSON array of allowed token audiences
    max_ttl_seconds INTEGER NOT NULL CHECK (max_ttl_seconds BETWEEN 1 AND 3600),
    created_at      INTEGER NOT NULL
);

CREATE TABLE agents (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    id         TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, id)
);

-- Credentials of orgs and agents. A secret is stored as its SHA-256 only
-- (secrets carry 256 random bits, so a slow hash would add cost and no safety).
CREATE TABLE client_credentials (
    id          TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,                -- org/ORG or org/ORG/agent/AGENT
    kind        TEXT NOT NULL CHECK (kind IN ('secret', 'public_key')),
    secret_hash BLOB,
    public_jwks TEXT,                         -- JSON array of public JWKs
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    CHECK ((kind = 'secret') = (secret_hash IS NOT NULL)),
    CHECK ((kind = 'public_key') = (public_jwks IS NOT NULL))
);
CREATE INDEX client_credentials_subject ON client_credentials (subject);

-- Signing keys. private_key is AES-256-GCM under the KEK named by kek_id,
-- with kid and alg bound as associated data; NULL once destroyed.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    alg          TEXT NOT NULL CHECK (alg IN ('ES256', 'RS256')),
    state        TEXT NOT NULL CHECK (state IN ('next', 'current', 'previous', 'retired', 'revoked')),
    public_jwk   TEXT NOT NULL,
    private_key  BLOB,
    kek_id       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    activated_at INTEGER,
    retired_at   INTEGER
);
-- The invariant "one current key per algorithm" is the database's to keep.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (alg) WHERE state = 'current';

-- Every issued token. A token is returned only after its row is committed.
CREATE TABLE audit_tokens (
    jti         TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    org_id      TEXT NOT NULL,
    agent_id    TEXT,
    audience    TEXT NOT NULL,
    kid         TEXT NOT NULL,
    iat         INTEGER NOT NULL,
    exp         INTEGER NOT NULL,
    auth_method TEXT NOT NULL
);
CREATE INDEX audit_tokens_org_iat ON audit_tokens (org_id, iat);

-- Client-assertion ids seen, kept until the assertion has expired (replay defence).
CREATE TABLE assertion_jtis (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX assertion_jtis_expiry ON assertion_jtis (expires_at);
