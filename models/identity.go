package models

import (
	"context"
	"database/sql"
	"errors"
	"regexp"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/apikey"
)

var hashShape = regexp.MustCompile(`^[0-9a-f]{64}$`)

// principalRow is one answer of the key lookup.
type principalRow struct {
	Role      string    `bun:"role"`
	ID        uuid.UUID `bun:"id"`
	RateLimit *int32    `bun:"rate_limit"`
	PakHash   string    `bun:"pak_hash"`
}

// A key authenticates only while its principal is live: the live admin
// key, a generator neither deleted nor deactivated, an agent not deleted
// (of any status). Authentication (principalQuery) and the feed's check of
// the keys its subscriptions were made with (PrincipalKeys) both use these.
const (
	liveGeneratorKey = "deleted_at IS NULL AND is_active"
	liveAgentKey     = "deleted_at IS NULL"
)

// principalQuery finds the key's owner; its three placeholders are the hash.
const principalQuery = `
	SELECT 'ADMIN' AS role, NULL::uuid AS id, NULL::integer AS rate_limit, pak_hash
	  FROM admin_keys WHERE pak_hash = ? AND deleted_at IS NULL
	UNION ALL
	SELECT 'GENERATOR', id, rate_limit_per_minute, pak_hash
	  FROM generators WHERE pak_hash = ? AND ` + liveGeneratorKey + `
	UNION ALL
	SELECT 'AGENT', id, NULL, pak_hash
	  FROM agents WHERE pak_hash = ? AND ` + liveAgentKey + `
	LIMIT 1`

// PrincipalForKeyHash finds whose key has this hash (apikey.Hash of the
// bearer token), in one statement: the live admin key, a live active
// generator, or a live agent (of any status). Unauthenticated otherwise.
// Every request sends it, so it goes prepared (scanPrepared).
func PrincipalForKeyHash(ctx context.Context, db bun.IDB, hash string) (Scope, error) {
	const name = "PrincipalForKeyHash"
	if !hashShape.MatchString(hash) {
		return Scope{}, op(name, "key", Unauthenticated("invalid API key"))
	}
	var r principalRow
	var id uuid.NullUUID
	handled, err := scanPrepared(ctx, db, reads, principalQuery, []any{hash, hash, hash}, &r.Role, &id, &r.RateLimit, &r.PakHash)
	r.ID = id.UUID
	if !handled {
		err = db.NewRaw(principalQuery, hash, hash, hash).Scan(ctx, &r)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return Scope{}, op(name, "key", Unauthenticated("invalid API key"))
	}
	if err != nil {
		return Scope{}, op(name, "key", err)
	}
	// The index lookup found the row; compare the stored hash in constant
	// time all the same, so no code path compares secrets with ==.
	if !apikey.Equal(r.PakHash, hash) {
		return Scope{}, op(name, "key", Unauthenticated("invalid API key"))
	}
	switch Role(r.Role) {
	case RoleAdmin:
		return AdminScope, nil
	case RoleGenerator:
		s := GeneratorScope(r.ID)
		s.RateLimitPerMinute = r.RateLimit
		return s, nil
	default:
		return AgentScope(r.ID), nil
	}
}

// PrincipalsForKeyHashes is PrincipalForKeyHash for many hashes in one
// statement: the scope each hash authenticates now; hashes that
// authenticate nobody (rotated, their owner deleted or deactivated, or
// malformed) are absent. The rate limit is not read.
func PrincipalsForKeyHashes(ctx context.Context, db bun.IDB, hashes []string) (map[string]Scope, error) {
	out := make(map[string]Scope, len(hashes))
	var valid []string
	for _, h := range hashes {
		if hashShape.MatchString(h) {
			valid = append(valid, h)
		}
	}
	if len(valid) == 0 {
		return out, nil
	}
	var rows []principalRow
	err := db.NewRaw(`
		SELECT 'ADMIN' AS role, NULL::uuid AS id, pak_hash FROM admin_keys WHERE pak_hash IN (?) AND deleted_at IS NULL
		UNION ALL
		SELECT 'GENERATOR', id, pak_hash FROM generators WHERE pak_hash IN (?) AND `+liveGeneratorKey+`
		UNION ALL
		SELECT 'AGENT', id, pak_hash FROM agents WHERE pak_hash IN (?) AND `+liveAgentKey,
		bun.List(valid), bun.List(valid), bun.List(valid)).Scan(ctx, &rows)
	if err != nil {
		return nil, op("PrincipalsForKeyHashes", "key", err)
	}
	for _, r := range rows {
		switch Role(r.Role) {
		case RoleAdmin:
			out[r.PakHash] = AdminScope
		case RoleGenerator:
			out[r.PakHash] = GeneratorScope(r.ID)
		default:
			out[r.PakHash] = AgentScope(r.ID)
		}
	}
	return out, nil
}

// EnsureAdminKey creates the admin key when there is none (first start) and
// returns its plaintext with created = true; otherwise "", false. Safe when
// several replicas start at once: one of them creates it.
func EnsureAdminKey(ctx context.Context, db bun.IDB) (plaintext string, created bool, err error) {
	const name = "EnsureAdminKey"
	key, hash, err := apikey.New("admin")
	if err != nil {
		return "", false, op(name, "admin key", err)
	}
	var id uuid.UUID
	err = db.NewRaw(`INSERT INTO admin_keys (pak_hash)
		SELECT ? WHERE NOT EXISTS (SELECT 1 FROM admin_keys WHERE deleted_at IS NULL)
		ON CONFLICT DO NOTHING
		RETURNING id`, hash).Scan(ctx, &id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, op(name, "admin key", err)
	}
	return key, true, nil
}

// RotateAdminKey retires the live admin key and returns a new one; the old
// key stops working when this commits.
func RotateAdminKey(ctx context.Context, db bun.IDB) (plaintext string, err error) {
	const name = "RotateAdminKey"
	key, hash, err := apikey.New("admin")
	if err != nil {
		return "", op(name, "admin key", err)
	}
	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		// Serialize rotations: the second waits, then retires the first's key.
		if _, err := tx.ExecContext(ctx, "LOCK TABLE admin_keys IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return err
		}
		if _, err := tx.NewUpdate().Model((*AdminKey)(nil)).Set("deleted_at = now()").
			Where("deleted_at IS NULL").Exec(ctx); err != nil {
			return err
		}
		_, err := tx.NewInsert().Model(&AdminKey{PakHash: hash}).Exec(ctx)
		return err
	})
	if err != nil {
		return "", op(name, "admin key", err)
	}
	return key, nil
}

// TouchGeneratorActivity sets last_active_at = now() unless it was set in
// the last 5 seconds, so calling it on every request costs at most one
// small UPDATE per generator every 5 seconds (and a no-op index probe
// otherwise).
func TouchGeneratorActivity(ctx context.Context, db bun.IDB, generatorID uuid.UUID) error {
	_, err := db.NewUpdate().Model((*Generator)(nil)).Set("last_active_at = now()").
		Where("g.id = ?", generatorID).
		Where("g.last_active_at IS NULL OR g.last_active_at < now() - interval '5 seconds'").
		Exec(ctx)
	return op("TouchGeneratorActivity", "generator", err)
}
