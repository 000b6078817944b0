package migrations

// Caps on labels, annotations and event messages enforced by the database,
// and deletion revoking a generator's or agent's key (issue 8).
func init() { Migrations.MustRegister(up("0004_caps_revocation"), down("0004_caps_revocation")) }
