-- Brokkr data-model rules enforced by the database itself (DESIGN §3.1–§3.3),
-- so they hold for every client, psql included.
--
-- SQLSTATEs raised here (class BR, mapped by models.Translate):
--   BR001  immutable: a deployment object may not be changed (§3.2)
--   BR002  parent deleted: a row may not be added under, or restored into, a soft-deleted parent
--
-- Soft deletes race with writers adding children to the same parent (an
-- object into a stack being deleted, a stack under a generator being
-- deleted, an event of an agent being deleted). Row locks do not order them
-- (the child's foreign-key KEY SHARE lock does not conflict with the
-- parent's UPDATE of deleted_at), so transaction-scoped advisory locks do:
-- the writer takes the lock before it checks that the parent is live, the
-- cascade takes it before it soft-deletes the children. Whoever comes second
-- waits for the first to end, and then either sees the deletion and fails
-- with BR002, or sees the new child and soft-deletes it with the others.
-- "Sees" relies on READ COMMITTED (PostgreSQL's default, and the broker's):
-- each statement in these functions takes a fresh snapshot after the wait. A
-- REPEATABLE READ writer would check on a snapshot taken before it.
--   * objects of a stack: the global sequence lock below (exclusive);
--   * stacks of a generator, events of an agent: brokkr_lock_children,
--     shared for writers (they do not wait for each other), exclusive for
--     the cascade.

-- updated_at ---------------------------------------------------------------
CREATE FUNCTION brokkr_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER generators_touch_updated_at BEFORE UPDATE ON generators
    FOR EACH ROW EXECUTE FUNCTION brokkr_touch_updated_at();
CREATE TRIGGER stacks_touch_updated_at BEFORE UPDATE ON stacks
    FOR EACH ROW EXECUTE FUNCTION brokkr_touch_updated_at();
CREATE TRIGGER deployment_objects_touch_updated_at BEFORE UPDATE ON deployment_objects
    FOR EACH ROW EXECUTE FUNCTION brokkr_touch_updated_at();
CREATE TRIGGER agents_touch_updated_at BEFORE UPDATE ON agents
    FOR EACH ROW EXECUTE FUNCTION brokkr_touch_updated_at();
CREATE TRIGGER agent_events_touch_updated_at BEFORE UPDATE ON agent_events
    FOR EACH ROW EXECUTE FUNCTION brokkr_touch_updated_at();
CREATE TRIGGER stack_labels_touch_updated_at BEFORE UPDATE ON stack_labels
    FOR EACH ROW EXECUTE FUNCTION brokkr_touch_updated_at();
CREATE TRIGGER stack_annotations_touch_updated_at BEFORE UPDATE ON stack_annotations
    FOR EACH ROW EXECUTE FUNCTION brokkr_touch_updated_at();
CREATE TRIGGER agent_labels_touch_updated_at BEFORE UPDATE ON agent_labels
    FOR EACH ROW EXECUTE FUNCTION brokkr_touch_updated_at();
CREATE TRIGGER agent_annotations_touch_updated_at BEFORE UPDATE ON agent_annotations
    FOR EACH ROW EXECUTE FUNCTION brokkr_touch_updated_at();
CREATE TRIGGER admin_keys_touch_updated_at BEFORE UPDATE ON admin_keys
    FOR EACH ROW EXECUTE FUNCTION brokkr_touch_updated_at();

-- Sequence allocation (§3.3) -------------------------------------------------
-- The advisory lock is held until the inserting transaction ends, so the
-- transaction holding sequence N commits (or rolls back) before any other can
-- draw N+1: once a row is visible, every smaller sequence is settled, and a
-- subscriber resuming "after N" can never miss a late commit.
CREATE FUNCTION brokkr_sequence_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 7301820501;

CREATE FUNCTION brokkr_deployment_object_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Lock first: the check below then sees any stack delete that held the
    -- lock before us (see the header).
    PERFORM pg_advisory_xact_lock(brokkr_sequence_lock_key());
    IF NOT NEW.is_deletion_marker
       AND EXISTS (SELECT 1 FROM stacks WHERE id = NEW.stack_id AND deleted_at IS NOT NULL) THEN
        RAISE EXCEPTION 'stack % is deleted', NEW.stack_id
            USING ERRCODE = 'BR002', COLUMN = 'stack_id', TABLE = 'deployment_objects';
    END IF;
    NEW.sequence_id := nextval('deployment_objects_sequence_id_seq');
    RETURN NEW;
END
$$;
CREATE TRIGGER deployment_objects_before_insert BEFORE INSERT ON deployment_objects
    FOR EACH ROW EXECUTE FUNCTION brokkr_deployment_object_before_insert();

-- Immutability (§3.2) ----------------------------------------------------------
CREATE FUNCTION brokkr_deployment_object_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- A deletion marker may be updated as long as it stays a marker.
    IF OLD.is_deletion_marker AND NEW.is_deletion_marker THEN
        RETURN NEW;
    END IF;
    -- Otherwise only deleted_at (soft delete or restore) may change, and
    -- updated_at together with it. (This trigger sorts before
    -- deployment_objects_touch_updated_at, so it sees the client's updated_at.)
    IF (NEW.id, NEW.sequence_id, NEW.stack_id, NEW.yaml_content, NEW.yaml_checksum,
        NEW.submitted_at, NEW.is_deletion_marker, NEW.created_at)
       IS NOT DISTINCT FROM
       (OLD.id, OLD.sequence_id, OLD.stack_id, OLD.yaml_content, OLD.yaml_checksum,
        OLD.submitted_at, OLD.is_deletion_marker, OLD.created_at)
       AND (NEW.deleted_at IS DISTINCT FROM OLD.deleted_at OR NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'deployment object % is immutable: submit a new one instead', OLD.id
        USING ERRCODE = 'BR001', TABLE = 'deployment_objects';
END
$$;
CREATE TRIGGER deployment_objects_immutable BEFORE UPDATE ON deployment_objects
    FOR EACH ROW EXECUTE FUNCTION brokkr_deployment_object_immutable();

-- Parents must be live --------------------------------------------------------
-- brokkr_lock_children takes the advisory lock guarding the children of one
-- parent, in the two-key space: kind 1 = the stacks of a generator, kind 2 =
-- the events of an agent (hash collisions only make unrelated writers wait).
CREATE FUNCTION brokkr_lock_children(kind integer, parent uuid, exclusive boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF exclusive THEN
        PERFORM pg_advisory_xact_lock(kind, hashtext(parent::text));
    ELSE
        PERFORM pg_advisory_xact_lock_shared(kind, hashtext(parent::text));
    END IF;
END
$$;

CREATE FUNCTION brokkr_stack_parent_live() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.deleted_at IS NULL THEN
        PERFORM brokkr_lock_children(1, NEW.generator_id, false);
    END IF;
    IF NEW.deleted_at IS NULL
       AND EXISTS (SELECT 1 FROM generators WHERE id = NEW.generator_id AND deleted_at IS NOT NULL) THEN
        RAISE EXCEPTION 'generator % is deleted', NEW.generator_id
            USING ERRCODE = 'BR002', COLUMN = 'generator_id', TABLE = 'stacks';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER stacks_parent_live BEFORE INSERT OR UPDATE OF deleted_at, generator_id ON stacks
    FOR EACH ROW EXECUTE FUNCTION brokkr_stack_parent_live();

-- Restoring a deployment object (other than by its stack's restore, which
-- makes the stack live first) needs a live stack; it takes the sequence lock
-- like an insert, so that it is ordered with a stack delete the same way.
CREATE FUNCTION brokkr_deployment_object_parent_live() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(brokkr_sequence_lock_key());
    IF EXISTS (SELECT 1 FROM stacks WHERE id = NEW.stack_id AND deleted_at IS NOT NULL) THEN
        RAISE EXCEPTION 'stack % is deleted', NEW.stack_id
            USING ERRCODE = 'BR002', COLUMN = 'stack_id', TABLE = 'deployment_objects';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER deployment_objects_parent_live BEFORE UPDATE OF deleted_at ON deployment_objects
    FOR EACH ROW WHEN (OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS NULL AND NOT NEW.is_deletion_marker)
    EXECUTE FUNCTION brokkr_deployment_object_parent_live();

CREATE FUNCTION brokkr_agent_event_parent_live() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.deleted_at IS NULL THEN
        PERFORM brokkr_lock_children(2, NEW.agent_id, false);
    END IF;
    IF NEW.deleted_at IS NULL
       AND EXISTS (SELECT 1 FROM agents WHERE id = NEW.agent_id AND deleted_at IS NOT NULL) THEN
        RAISE EXCEPTION 'agent % is deleted', NEW.agent_id
            USING ERRCODE = 'BR002', COLUMN = 'agent_id', TABLE = 'agent_events';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER agent_events_parent_live BEFORE INSERT OR UPDATE OF deleted_at, agent_id ON agent_events
    FOR EACH ROW EXECUTE FUNCTION brokkr_agent_event_parent_live();

CREATE FUNCTION brokkr_agent_target_parents_live() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM agents WHERE id = NEW.agent_id AND deleted_at IS NOT NULL) THEN
        RAISE EXCEPTION 'agent % is deleted', NEW.agent_id
            USING ERRCODE = 'BR002', COLUMN = 'agent_id', TABLE = 'agent_targets';
    END IF;
    IF EXISTS (SELECT 1 FROM stacks WHERE id = NEW.stack_id AND deleted_at IS NOT NULL) THEN
        RAISE EXCEPTION 'stack % is deleted', NEW.stack_id
            USING ERRCODE = 'BR002', COLUMN = 'stack_id', TABLE = 'agent_targets';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER agent_targets_parents_live BEFORE INSERT OR UPDATE OF agent_id, stack_id ON agent_targets
    FOR EACH ROW EXECUTE FUNCTION brokkr_agent_target_parents_live();

-- Soft delete and restore cascades (§3.1) ---------------------------------------
CREATE FUNCTION brokkr_generator_cascade() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
        -- Wait for writers adding stacks; then every stack is seen.
        PERFORM brokkr_lock_children(1, NEW.id, true);
        -- Each stack's own trigger soft-deletes its objects and adds its marker.
        UPDATE stacks SET deleted_at = NEW.deleted_at
         WHERE generator_id = NEW.id AND deleted_at IS NULL;
    ELSIF OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS NULL THEN
        UPDATE stacks SET deleted_at = NULL
         WHERE generator_id = NEW.id AND deleted_at = OLD.deleted_at;
    ELSIF NEW.deleted_at <> OLD.deleted_at THEN
        -- Re-stamping a deleted generator re-stamps what its cascade deleted,
        -- so that a later restore still finds it.
        UPDATE stacks SET deleted_at = NEW.deleted_at
         WHERE generator_id = NEW.id AND deleted_at = OLD.deleted_at;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER generators_cascade AFTER UPDATE OF deleted_at ON generators
    FOR EACH ROW EXECUTE FUNCTION brokkr_generator_cascade();

CREATE FUNCTION brokkr_stack_cascade() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
        -- Wait for writers adding objects; then every object is seen.
        PERFORM pg_advisory_xact_lock(brokkr_sequence_lock_key());
        UPDATE deployment_objects SET deleted_at = NEW.deleted_at
         WHERE stack_id = NEW.id AND deleted_at IS NULL;
        -- The deletion marker: how agents learn to remove the stack's resources.
        -- It stays live, even inside a generator cascade.
        INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum, submitted_at, is_deletion_marker)
        VALUES (NEW.id, '', encode(sha256(''::bytea), 'hex'), NEW.deleted_at, true);
    ELSIF OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS NULL THEN
        -- Objects removed by this stack's cascade come back ...
        UPDATE deployment_objects SET deleted_at = NULL
         WHERE stack_id = NEW.id AND deleted_at = OLD.deleted_at AND NOT is_deletion_marker;
        -- ... its live deletion markers retire ...
        UPDATE deployment_objects SET deleted_at = now()
         WHERE stack_id = NEW.id AND is_deletion_marker AND deleted_at IS NULL;
        -- ... and the latest real content is published again under a new
        -- sequence, so agents that already removed the stack apply it again.
        INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)
        SELECT d.stack_id, d.yaml_content, d.yaml_checksum
          FROM deployment_objects d
         WHERE d.stack_id = NEW.id AND NOT d.is_deletion_marker AND d.deleted_at IS NULL
         ORDER BY d.sequence_id DESC
         LIMIT 1;
    ELSIF NEW.deleted_at <> OLD.deleted_at THEN
        -- Re-stamped (directly or by its generator): its objects follow; the
        -- marker keeps its submitted_at, when the deletion was published.
        UPDATE deployment_objects SET deleted_at = NEW.deleted_at
         WHERE stack_id = NEW.id AND deleted_at = OLD.deleted_at AND NOT is_deletion_marker;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER stacks_cascade AFTER UPDATE OF deleted_at ON stacks
    FOR EACH ROW EXECUTE FUNCTION brokkr_stack_cascade();

CREATE FUNCTION brokkr_agent_cascade() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
        -- Wait for writers adding events; then every event is seen.
        PERFORM brokkr_lock_children(2, NEW.id, true);
        UPDATE agent_events SET deleted_at = NEW.deleted_at
         WHERE agent_id = NEW.id AND deleted_at IS NULL;
    ELSIF OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS NULL THEN
        UPDATE agent_events SET deleted_at = NULL
         WHERE agent_id = NEW.id AND deleted_at = OLD.deleted_at;
    ELSIF NEW.deleted_at <> OLD.deleted_at THEN
        UPDATE agent_events SET deleted_at = NEW.deleted_at
         WHERE agent_id = NEW.id AND deleted_at = OLD.deleted_at;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER agents_cascade AFTER UPDATE OF deleted_at ON agents
    FOR EACH ROW EXECUTE FUNCTION brokkr_agent_cascade();
