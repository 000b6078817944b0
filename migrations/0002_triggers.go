package migrations

// Triggers: updated_at, sequence allocation, immutability, live parents,
// soft-delete and restore cascades (DESIGN §3.1–§3.3).
func init() { Migrations.MustRegister(up("0002_triggers"), down("0002_triggers")) }
