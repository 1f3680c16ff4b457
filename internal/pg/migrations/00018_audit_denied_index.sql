-- The denied calls of the audit trail, newest first (ListAuditEvents with
-- denied_only), had no index: every write and every refusal adds an event,
-- refusals are rare, and a page of them walked back through the whole trail
-- holding a connection. A partial index holds the refusals alone, a few
-- bytes each.
--
-- Built CONCURRENTLY, so that calls keep being audited while it is built on
-- a long trail; that cannot run in a transaction, so a build that failed
-- leaves an invalid index, which is dropped first.

-- +goose NO TRANSACTION
-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('audit_events_denied') AND NOT indisvalid) THEN
        DROP INDEX audit_events_denied;
    END IF;
END
$$;
-- +goose StatementEnd

CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_events_denied ON audit_events (id) WHERE code IN ('PermissionDenied', 'Unauthenticated');

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS audit_events_denied;
