-- Every change to an org or agent, in order, so that the principal cache drops
-- what changed within a second (subject org/ORG covers the org and all its agents).
CREATE TABLE principal_changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    subject    TEXT NOT NULL,
    changed_at INTEGER NOT NULL
);
