-- Wake-ups for the subscription hub (package feed). Payloads carry ids only;
-- the hub reads rows from the tables. The channel carries the schema name, so
-- brokkr instances in different schemas of one database do not wake each other.
--
-- d: new deployment objects. One notification per inserting statement, sent
-- with the transaction's commit: deployment-object commits are already
-- serialized by the sequence lock (0002), so the notification queue's commit
-- lock adds no new serialization, and unlike a NOTIFY sent after commit from
-- the API it needs no transaction (and WAL flush) of its own. `make bench`
-- (feed.BenchmarkWakeupWritePath) measures the alternatives. Target and agent
-- changes are rare: a NOTIFY inside the writing transaction costs nothing
-- that matters there either. Agent events, which are frequent and not
-- serialized, have no trigger: the hub polls them (and Published wakes it).
CREATE FUNCTION brokkr_feed_notify_objects() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('brokkr_' || TG_TABLE_SCHEMA, 'd');
    RETURN NULL;
END
$$;
CREATE TRIGGER deployment_objects_feed_notify AFTER INSERT ON deployment_objects
    FOR EACH STATEMENT EXECUTE FUNCTION brokkr_feed_notify_objects();

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

-- g:<generator_id>: the generator's key, activity or deletion changed (its
-- dashboard subscriptions end).
CREATE FUNCTION brokkr_feed_notify_generator() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('brokkr_' || TG_TABLE_SCHEMA, 'g:' || OLD.id::text);
    ELSE
        PERFORM pg_notify('brokkr_' || TG_TABLE_SCHEMA, 'g:' || NEW.id::text);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER generators_feed_notify_update AFTER UPDATE ON generators
    FOR EACH ROW
    WHEN (OLD.pak_hash IS DISTINCT FROM NEW.pak_hash
          OR OLD.is_active IS DISTINCT FROM NEW.is_active
          OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
    EXECUTE FUNCTION brokkr_feed_notify_generator();
CREATE TRIGGER generators_feed_notify_delete AFTER DELETE ON generators
    FOR EACH ROW EXECUTE FUNCTION brokkr_feed_notify_generator();

-- k: the admin key changed (rotation): open admin websockets are re-checked.
CREATE FUNCTION brokkr_feed_notify_admin_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('brokkr_' || TG_TABLE_SCHEMA, 'k:');
    RETURN NULL;
END
$$;
CREATE TRIGGER admin_keys_feed_notify AFTER INSERT OR UPDATE OR DELETE ON admin_keys
    FOR EACH STATEMENT EXECUTE FUNCTION brokkr_feed_notify_admin_key();

-- The agent-event feed reads recent events by creation time.
CREATE INDEX agent_events_created_at_idx ON agent_events (created_at);
