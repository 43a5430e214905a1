-- Replicas follow principal_changes by reading seq > (the last seq they saw).
-- A sequence hands out numbers in the order transactions ask, not the order
-- they commit: a change that took seq 5 but committed after seq 6 was read
-- would never be seen, and a revoked credential could stay cached on that
-- replica until the cache's lifetime ends. So every insert takes one lock,
-- held until its transaction ends, before it takes its number: numbers are
-- then taken and made visible in the same order.
CREATE FUNCTION nomos_principal_change_in_order() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('nomos_issuer_principal_changes'));
    NEW.seq := nextval(pg_get_serial_sequence('principal_changes', 'seq'));
    RETURN NEW;
END
$$;

CREATE TRIGGER principal_changes_in_commit_order
    BEFORE INSERT ON principal_changes
    FOR EACH ROW EXECUTE FUNCTION nomos_principal_change_in_order();
