-- Every change to an org or agent, in order, so that every replica's principal
-- cache drops what changed within a second (subject org/ORG covers the org and
-- all its agents).
CREATE TABLE principal_changes (
    seq        BIGSERIAL PRIMARY KEY,
    subject    TEXT NOT NULL,
    changed_at BIGINT NOT NULL
);
