package migrations

// Feed wake-ups: NOTIFY on new deployment objects and on target and agent
// changes, and an index for the agent-event feed's time cursor (package feed).
func init() { Migrations.MustRegister(up("0003_feed_notify"), down("0003_feed_notify")) }
