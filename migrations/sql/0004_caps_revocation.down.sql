-- Keys cleared by the up step are not given back: revoked keys stay revoked.
COMMENT ON COLUMN agents.pak_hash IS NULL;
COMMENT ON COLUMN generators.pak_hash IS NULL;
DROP TRIGGER agents_revoke_deleted_key ON agents;
DROP TRIGGER generators_revoke_deleted_key ON generators;
DROP FUNCTION brokkr_revoke_deleted_key();
ALTER TABLE agent_events DROP CONSTRAINT agent_events_message_check;
DROP TRIGGER agent_annotations_cap_moved ON agent_annotations;
DROP TRIGGER agent_annotations_cap ON agent_annotations;
DROP TRIGGER agent_labels_cap_moved ON agent_labels;
DROP TRIGGER agent_labels_cap ON agent_labels;
DROP TRIGGER stack_annotations_cap_moved ON stack_annotations;
DROP TRIGGER stack_annotations_cap ON stack_annotations;
DROP TRIGGER stack_labels_cap_moved ON stack_labels;
DROP TRIGGER stack_labels_cap ON stack_labels;
DROP FUNCTION brokkr_check_children_cap();
