-- The issuer `serve` last served under, one row: commands that mint tokens
-- locally (`token mint`) read it so that their `iss` agrees with discovery,
-- and refuse when they are configured with another issuer. `dev_tls` is 1
-- when it was `serve --dev-tls` (clients then trust keys/dev-ca.pem).
CREATE TABLE served_issuer (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    issuer    TEXT NOT NULL,
    dev_tls   BIGINT NOT NULL,
    served_at BIGINT NOT NULL
);
