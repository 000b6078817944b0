package migrations_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// DESIGN §3.4: every foreign key is backed by an index that leads with its
// columns, so cascades and joins never scan the child table.
func TestEveryForeignKeyIsIndexed(t *testing.T) {
	f := setup(t)
	rows, err := f.c.Query(f.ctx, `SELECT c.conname::text FROM pg_constraint c
		WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
		  AND NOT EXISTS (SELECT 1 FROM pg_index i
			WHERE i.indrelid = c.conrelid AND i.indpred IS NULL
			  AND array_to_string((i.indkey::int2[])[0:cardinality(c.conkey) - 1], ',') = array_to_string(c.conkey, ','))`)
	if err != nil {
		t.Fatal(err)
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Errorf("foreign keys without an index: %v", missing)
	}
	if n := f.int(`SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace`); n < 10 {
		t.Errorf("only %d foreign keys", n)
	}
}

// The lookups DESIGN §3.4 names have their indexes.
func TestLookupIndexes(t *testing.T) {
	f := setup(t)
	rows, err := f.c.Query(f.ctx, `SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(defs, "\n")
	for _, want := range []string{
		"ON public.deployment_objects USING btree (stack_id, sequence_id DESC)\n",
		"ON public.deployment_objects USING btree (stack_id, sequence_id DESC) WHERE (deleted_at IS NULL)",
		"UNIQUE INDEX deployment_objects_sequence_id_key ON public.deployment_objects USING btree (sequence_id)",
		"ON public.agent_events USING btree (agent_id, created_at DESC)",
		"UNIQUE INDEX generators_pak_hash_key ON public.generators USING btree (pak_hash)",
		"UNIQUE INDEX agents_pak_hash_key ON public.agents USING btree (pak_hash)",
		"UNIQUE INDEX admin_keys_pak_hash_key ON public.admin_keys USING btree (pak_hash)",
		"ON public.stack_labels USING btree (label)",
		"ON public.agent_labels USING btree (label)",
		"ON public.stack_annotations USING btree (key, value)",
		"ON public.agent_annotations USING btree (key, value)",
		"ON public.agents USING btree (status) WHERE (deleted_at IS NULL)",
		"UNIQUE INDEX generators_name_live_key ON public.generators USING btree (name) WHERE (deleted_at IS NULL)",
		"UNIQUE INDEX stacks_generator_id_name_live_key ON public.stacks USING btree (generator_id, name) WHERE (deleted_at IS NULL)",
		"UNIQUE INDEX agents_name_cluster_name_live_key ON public.agents USING btree (name, cluster_name) WHERE (deleted_at IS NULL)",
	} {
		if !strings.Contains(all+"\n", want) {
			t.Errorf("no index %q", want)
		}
	}
}
