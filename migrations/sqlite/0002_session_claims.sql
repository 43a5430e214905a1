-- AWS session claims (session tags, source identity): JSON per org, and an
-- optional per-agent override (NULL: the agent inherits its org's setting).
ALTER TABLE orgs ADD COLUMN session_claims TEXT;
ALTER TABLE agents ADD COLUMN session_claims TEXT;
