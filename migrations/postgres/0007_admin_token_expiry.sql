-- Admin tokens may expire: an expired token is refused like a revoked one.
-- NULL: it does not expire (every token made before this migration).
ALTER TABLE admin_tokens ADD COLUMN expires_at BIGINT;
