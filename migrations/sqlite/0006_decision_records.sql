-- Decision records: every refused client authentication, so that an operator
-- can tell why a client was refused while the client hears only
-- `invalid_client`. `kind` leaves room for policy denials. A client id is
-- kept only when it is well formed (a malformed one is the reason, never
-- echoed), and never a secret or an assertion. Purged with the audit
-- retention.
CREATE TABLE decisions (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    client_id   TEXT,
    org_id      TEXT,
    reason      TEXT NOT NULL,
    auth_method TEXT,
    source      TEXT,
    request_id  TEXT
);
-- Newest first across orgs, per org and per client; the retention purge.
CREATE INDEX decisions_at ON decisions (at);
CREATE INDEX decisions_org_at ON decisions (org_id, at);
CREATE INDEX decisions_client_at ON decisions (client_id, at);
