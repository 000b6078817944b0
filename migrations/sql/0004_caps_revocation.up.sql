-- Caps the database enforces whoever writes, and keys revoked by deletion
-- (issue 8, items 6 and 7). models.Translate maps the violations raised here
-- to BAD_USER_INPUT; the caps are models.MaxLabels, models.MaxAnnotations and
-- models.MaxEventMessageBytes.

-- Labels and annotations per stack and per agent: at most 100 of each. --------
-- Checked after every statement that adds rows to a label or annotation table
-- or moves rows to another parent, for each parent it touched, under an
-- exclusive advisory lock per parent (brokkr_lock_children of 0002: kind 3,
-- the labels and annotations of a stack; kind 4, of an agent). Two writers
-- adding the 100th label at once therefore cannot both pass: the second waits
-- for the first to end, then counts its committed rows (READ COMMITTED: each
-- statement of the function takes a fresh snapshot). Parents are locked in id
-- order, so statements touching several parents do not deadlock each other.
-- A parent already over the cap when this step ran keeps its rows but takes no
-- new ones.
--
-- TG_ARGV: the parent column, the lock kind, the cap. Raised as
-- check_violation with the constraint <table>_cap.
CREATE FUNCTION brokkr_check_children_cap() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    parent_col text := TG_ARGV[0];
    lock_kind integer := TG_ARGV[1]::integer;
    cap integer := TG_ARGV[2]::integer;
    parents text;
    parent uuid;
    n bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        parents := format('SELECT DISTINCT %I FROM new_rows ORDER BY 1', parent_col);
    ELSE
        parents := format('SELECT DISTINCT n.%1$I FROM new_rows n JOIN old_rows o ON o.id = n.id
                            WHERE n.%1$I IS DISTINCT FROM o.%1$I ORDER BY 1', parent_col);
    END IF;
    FOR parent IN EXECUTE parents LOOP
        PERFORM brokkr_lock_children(lock_kind, parent, true);
        EXECUTE format('SELECT count(*) FROM %I.%I WHERE %I = $1', TG_TABLE_SCHEMA, TG_TABLE_NAME, parent_col)
            INTO n USING parent;
        IF n > cap THEN
            RAISE EXCEPTION '% % has % rows in %, more than %', parent_col, parent, n, TG_TABLE_NAME, cap
                USING ERRCODE = 'check_violation', CONSTRAINT = TG_TABLE_NAME || '_cap', TABLE = TG_TABLE_NAME;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER stack_labels_cap AFTER INSERT ON stack_labels
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION brokkr_check_children_cap('stack_id', '3', '100');
CREATE TRIGGER stack_labels_cap_moved AFTER UPDATE ON stack_labels
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION brokkr_check_children_cap('stack_id', '3', '100');
CREATE TRIGGER stack_annotations_cap AFTER INSERT ON stack_annotations
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION brokkr_check_children_cap('stack_id', '3', '100');
CREATE TRIGGER stack_annotations_cap_moved AFTER UPDATE ON stack_annotations
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION brokkr_check_children_cap('stack_id', '3', '100');
CREATE TRIGGER agent_labels_cap AFTER INSERT ON agent_labels
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION brokkr_check_children_cap('agent_id', '4', '100');
CREATE TRIGGER agent_labels_cap_moved AFTER UPDATE ON agent_labels
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION brokkr_check_children_cap('agent_id', '4', '100');
CREATE TRIGGER agent_annotations_cap AFTER INSERT ON agent_annotations
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION brokkr_check_children_cap('agent_id', '4', '100');
CREATE TRIGGER agent_annotations_cap_moved AFTER UPDATE ON agent_annotations
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION brokkr_check_children_cap('agent_id', '4', '100');

-- Event messages: at most 32 KiB of UTF-8. ------------------------------------
-- NOT VALID: rows written before this step are left as they are; every new or
-- changed row is checked.
ALTER TABLE agent_events ADD CONSTRAINT agent_events_message_check
    CHECK (octet_length(message) <= 32768) NOT VALID;

-- Deleted means revoked. --------------------------------------------------------
-- A soft-deleted generator or agent has no key: deleting it clears pak_hash,
-- so its old key never works again, not even after a restore; a restored
-- principal acts again once an admin gives it a new key (rotateGeneratorKey,
-- rotateAgentKey). A row is never given a key while deleted either.
CREATE FUNCTION brokkr_revoke_deleted_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.pak_hash := NULL;
    RETURN NEW;
END
$$;
CREATE TRIGGER generators_revoke_deleted_key BEFORE INSERT OR UPDATE ON generators
    FOR EACH ROW WHEN (NEW.deleted_at IS NOT NULL AND NEW.pak_hash IS NOT NULL)
    EXECUTE FUNCTION brokkr_revoke_deleted_key();
CREATE TRIGGER agents_revoke_deleted_key BEFORE INSERT OR UPDATE ON agents
    FOR EACH ROW WHEN (NEW.deleted_at IS NOT NULL AND NEW.pak_hash IS NOT NULL)
    EXECUTE FUNCTION brokkr_revoke_deleted_key();
-- Principals deleted before this step lose their keys now.
UPDATE generators SET pak_hash = NULL WHERE deleted_at IS NOT NULL AND pak_hash IS NOT NULL;
UPDATE agents SET pak_hash = NULL WHERE deleted_at IS NOT NULL AND pak_hash IS NOT NULL;

COMMENT ON COLUMN generators.pak_hash IS
    'SHA-256 (hex) of the API key. NULL while deleted: deleting revokes the key for good; a restored generator needs rotateGeneratorKey.';
COMMENT ON COLUMN agents.pak_hash IS
    'SHA-256 (hex) of the API key. NULL while deleted: deleting revokes the key for good; a restored agent needs rotateAgentKey.';
