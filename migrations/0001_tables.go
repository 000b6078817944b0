package migrations

// Tables, constraints and indexes of DESIGN §3.
func init() { Migrations.MustRegister(up("0001_tables"), down("0001_tables")) }
