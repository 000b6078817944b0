DROP INDEX agent_events_created_at_idx;
DROP TRIGGER agents_feed_notify_delete ON agents;
DROP TRIGGER agents_feed_notify_update ON agents;
DROP FUNCTION brokkr_feed_notify_agent();
DROP TRIGGER agent_targets_feed_notify ON agent_targets;
DROP FUNCTION brokkr_feed_notify_target();
DROP TRIGGER deployment_objects_feed_notify ON deployment_objects;
DROP FUNCTION brokkr_feed_notify_objects();
