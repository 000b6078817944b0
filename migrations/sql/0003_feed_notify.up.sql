-- Wake-ups for the subscription hub (package feed). Payloads carry ids only;
-- the hub reads rows from the tables. The channel carries the schema name, so
-- brokkr instances in different schemas of one database do not wake each other.
--
-- Deployment objects have no trigger here: their inserts are serialized by the
-- sequence lock, so the hub wakes on a NOTIFY sent after commit by the API
-- (coalesced) and a periodic poll of the committed sequence (writes from psql).
-- Target and agent changes are rare, so a NOTIFY inside the writing
-- transaction costs nothing that matters and covers every client.

-- t:<agent_id>: the agent's targets changed.
CREATE FUNCTION brokkr_feed_notify_target() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('brokkr_' || TG_TABLE_SCHEMA, 't:' || OLD.agent_id::text);
    ELSE
        PERFORM pg_notify('brokkr_' || TG_TABLE_SCHEMA, 't:' || NEW.agent_id::text);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER agent_targets_feed_notify AFTER INSERT OR DELETE ON agent_targets
    FOR EACH ROW EXECUTE FUNCTION brokkr_feed_notify_target();

-- a:<agent_id>: the agent's status, key or deletion changed.
CREATE FUNCTION brokkr_feed_notify_agent() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('brokkr_' || TG_TABLE_SCHEMA, 'a:' || OLD.id::text);
    ELSE
        PERFORM pg_notify('brokkr_' || TG_TABLE_SCHEMA, 'a:' || NEW.id::text);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER agents_feed_notify_update AFTER UPDATE ON agents
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.pak_hash IS DISTINCT FROM NEW.pak_hash
          OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
    EXECUTE FUNCTION brokkr_feed_notify_agent();
CREATE TRIGGER agents_feed_notify_delete AFTER DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION brokkr_feed_notify_agent();

-- The agent-event feed reads recent events by creation time.
CREATE INDEX agent_events_created_at_idx ON agent_events (created_at);
