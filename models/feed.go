package models

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// The reads of the subscription hub (package feed, DESIGN §5). The hub asks
// these functions for rows and writes no SQL of its own. Every condition
// that decides what a subscriber sees is built from scoping.go, the same as
// the query that shows the same rows:
//   - an agent's feed carries the stacks of agentStacks, the rule of
//     deploymentObjectScope for that agent (FeedAgentStates), and replays
//     what the agent's own deploymentObjects query shows (FeedObjects);
//   - a stackDeploymentObjects subscription shows what
//     stack(id) { deploymentObjects } shows its scope (StackView);
//   - an agentEvents subscription shows what the agentEvents query shows
//     with the same filter (EventView).
//
// The reads of what is new (ObjectsAbove, AgentEventsSince) are the server's
// own and unscoped: the hub sorts their rows out to subscribers with the
// above.

// NotifyChannel is the channel migration 0003's triggers NOTIFY on:
// brokkr_<schema>.
func NotifyChannel(ctx context.Context, db bun.IDB) (string, error) {
	var schema string
	if err := db.NewRaw("SELECT current_schema()").Scan(ctx, &schema); err != nil {
		return "", op("NotifyChannel", "schema", err)
	}
	return "brokkr_" + schema, nil
}

// MaxSequence is the highest deployment-object sequence committed (0 when
// there is none).
func MaxSequence(ctx context.Context, db bun.IDB) (int64, error) {
	var seq int64
	err := db.NewRaw("SELECT coalesce(max(sequence_id), 0) FROM deployment_objects").Scan(ctx, &seq)
	return seq, op("MaxSequence", "deployment object", err)
}

// ObjectsAbove returns up to limit objects with a sequence above after, in
// sequence order, with their Stack. Soft-deleted objects are included: the
// hub delivers none of them but moves its watermark past them.
func ObjectsAbove(ctx context.Context, db bun.IDB, after int64, limit int) ([]*DeploymentObject, error) {
	var objs []*DeploymentObject
	err := db.NewSelect().Model(&objs).ColumnExpr("d.*").Where("d.sequence_id > ?", after).
		OrderExpr("d.sequence_id").Limit(int64(limit)).Scan(ctx)
	if err == nil {
		err = attachStacks(ctx, db, objs)
	}
	return objs, op("ObjectsAbove", "deployment object", err)
}

// LatestObjectsUpTo returns, for each of the stacks, its latest live object
// with a sequence at or below upTo (what the agent feed hands over for a
// stack it starts carrying), with its Stack; stacks with none are absent.
func LatestObjectsUpTo(ctx context.Context, db bun.IDB, stackIDs []uuid.UUID, upTo int64) (map[uuid.UUID]*DeploymentObject, error) {
	if len(stackIDs) == 0 {
		return map[uuid.UUID]*DeploymentObject{}, nil
	}
	var objs []*DeploymentObject
	err := latestObjectsQuery(db, &objs, AdminScope, stackIDs).Where("d.sequence_id <= ?", upTo).Scan(ctx)
	if err == nil {
		err = attachStacks(ctx, db, objs)
	}
	if err != nil {
		return nil, op("LatestObjectsUpTo", "deployment object", err)
	}
	return byStack(objs), nil
}

// attachStacks sets Stack on each object (one statement; deleted stacks
// too, for deletion markers). The hub hands one object to many subscribers,
// which resolve `stack` from it without a query of their own.
func attachStacks(ctx context.Context, db bun.IDB, objs []*DeploymentObject) error {
	seen := map[uuid.UUID]bool{}
	var ids []uuid.UUID
	for _, o := range objs {
		if !seen[o.StackID] {
			seen[o.StackID] = true
			ids = append(ids, o.StackID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	stacks, err := StacksByIDs(ctx, db, AdminScope, ids)
	if err != nil {
		return err
	}
	for _, o := range objs {
		o.Stack = stacks[o.StackID]
	}
	return nil
}

// inRange selects the objects of q with from < sequence <= to, in sequence
// order, at most limit, and attaches their stacks.
func inRange(ctx context.Context, db bun.IDB, q *bun.SelectQuery, from, to int64, limit int) ([]*DeploymentObject, error) {
	var objs []*DeploymentObject
	err := q.ColumnExpr("d.*").Where("d.sequence_id > ? AND d.sequence_id <= ?", from, to).
		OrderExpr("d.sequence_id").Limit(int64(limit)).Scan(ctx, &objs)
	if err == nil {
		err = attachStacks(ctx, db, objs)
	}
	return objs, err
}

// FeedObjects returns what the agent's feed replays from the stacks it was
// told to (stacks): the live objects among them that the agent's own
// deploymentObjects query shows, with from < sequence <= to, in sequence
// order, at most limit, with their Stack.
func FeedObjects(ctx context.Context, db bun.IDB, agentID uuid.UUID, stacks []uuid.UUID, from, to int64, limit int) ([]*DeploymentObject, error) {
	if len(stacks) == 0 {
		return nil, nil
	}
	q, err := objectListQuery(db, AgentScope(agentID), nil, ListArgs{})
	if err != nil {
		return nil, op("FeedObjects", "deployment object", err)
	}
	objs, err := inRange(ctx, db, q.Where("d.stack_id IN (?)", bun.List(stacks)), from, to, limit)
	return objs, op("FeedObjects", "deployment object", err)
}

// StackView is what one stackDeploymentObjects subscription shows: the
// objects stack(id) { deploymentObjects } shows Scope (a stack it sees, and
// live, except for admins, who follow deleted stacks as with
// includeDeleted; the live objects of it that Scope sees).
type StackView struct {
	Scope   Scope
	StackID uuid.UUID
}

// Check answers NotFound unless the view's stack is visible to its scope.
func (v StackView) Check(ctx context.Context, db bun.IDB) error {
	_, err := GetStack(ctx, db, v.Scope, v.StackID, v.Scope.IsAdmin())
	return err
}

func (v StackView) query(db bun.IDB) (*bun.SelectQuery, error) {
	q, err := objectListQuery(db, v.Scope, &DeploymentObjectFilter{StackID: &v.StackID}, ListArgs{})
	if err != nil {
		return nil, err
	}
	vs := visibleStackIDs(v.Scope)
	return q.Where("d.stack_id IN ("+vs.sql+")", vs.args...), nil
}

// StackViewObjects returns the view's objects with from < sequence <= to,
// in sequence order, at most limit, with their Stack (a dashboard's replay).
func StackViewObjects(ctx context.Context, db bun.IDB, v StackView, from, to int64, limit int) ([]*DeploymentObject, error) {
	q, err := v.query(db)
	if err != nil {
		return nil, op("StackViewObjects", "deployment object", err)
	}
	objs, err := inRange(ctx, db, q, from, to, limit)
	return objs, op("StackViewObjects", "deployment object", err)
}

// StackViewsSee returns, for each view (same index), the ids of its objects
// with from < sequence <= to: which of the objects just read each dashboard
// subscription shows. One statement per 100 views.
func StackViewsSee(ctx context.Context, db bun.IDB, views []StackView, from, to int64) ([]map[uuid.UUID]bool, error) {
	qs := make([]*bun.SelectQuery, len(views))
	for i, v := range views {
		q, err := v.query(db)
		if err != nil {
			return nil, op("StackViewsSee", "deployment object", err)
		}
		qs[i] = q.ColumnExpr("? AS view_index, d.id", i).Where("d.sequence_id > ? AND d.sequence_id <= ?", from, to)
	}
	out, err := viewsSee(ctx, db, qs)
	return out, op("StackViewsSee", "deployment object", err)
}

// EventView is what one agentEvents subscription shows: the events the
// agentEvents query shows Scope with Filter.
type EventView struct {
	Scope  Scope
	Filter AgentEventFilter
}

// Key is equal for views that show the same events.
func (v EventView) Key() string {
	f, _ := json.Marshal(v.Filter)
	return string(v.Scope.Role) + "/" + v.Scope.GeneratorID.String() + "/" + v.Scope.AgentID.String() + "/" + string(f)
}

// AgentEventViewsSee returns, for each view (same index), which of the
// events ids it shows. One statement per 100 views.
func AgentEventViewsSee(ctx context.Context, db bun.IDB, views []EventView, ids []uuid.UUID) ([]map[uuid.UUID]bool, error) {
	if len(ids) == 0 {
		return emptySets(len(views)), nil
	}
	qs := make([]*bun.SelectQuery, len(views))
	for i, v := range views {
		q, err := eventListQuery(db, v.Scope, &v.Filter, ListArgs{})
		if err != nil {
			return nil, op("AgentEventViewsSee", "agent event", err)
		}
		qs[i] = q.ColumnExpr("? AS view_index, e.id", i).Where("e.id IN (?)", bun.List(ids))
	}
	out, err := viewsSee(ctx, db, qs)
	return out, op("AgentEventViewsSee", "agent event", err)
}

// viewChunk is the most views one statement of viewsSee unites.
const viewChunk = 100

type viewRow struct {
	View int       `bun:"view_index"`
	ID   uuid.UUID `bun:"id"`
}

// viewsSee runs the views' queries (each selecting its index as view_index
// and the row id), a UNION ALL of up to viewChunk of them per statement,
// and returns each one's ids.
func viewsSee(ctx context.Context, db bun.IDB, qs []*bun.SelectQuery) ([]map[uuid.UUID]bool, error) {
	out := emptySets(len(qs))
	for start := 0; start < len(qs); start += viewChunk {
		chunk := qs[start:min(start+viewChunk, len(qs))]
		parts := make([]string, len(chunk))
		args := make([]any, len(chunk))
		for i, q := range chunk {
			parts[i], args[i] = "(?)", q
		}
		var rows []viewRow
		if err := db.NewRaw(strings.Join(parts, " UNION ALL "), args...).Scan(ctx, &rows); err != nil {
			return nil, err
		}
		for _, r := range rows {
			out[r.View][r.ID] = true
		}
	}
	return out, nil
}

func emptySets(n int) []map[uuid.UUID]bool {
	out := make([]map[uuid.UUID]bool, n)
	for i := range out {
		out[i] = map[uuid.UUID]bool{}
	}
	return out
}

// OldestRunningTransaction returns the database's clock and the start of
// the oldest transaction still running on it from another session (nil if
// none): an agent event's created_at is its transaction's start, so one
// still to commit cannot be older. Sessions of roles this one may not see
// are not counted (brokkr's own connections share one role).
func OldestRunningTransaction(ctx context.Context, db bun.IDB) (now time.Time, oldest *time.Time, err error) {
	var o sql.NullTime
	err = db.QueryRowContext(ctx, `SELECT clock_timestamp(), (SELECT min(xact_start) FROM pg_stat_activity
		 WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid())`).Scan(&now, &o)
	if err != nil {
		return now, nil, op("OldestRunningTransaction", "transaction", err)
	}
	if o.Valid {
		oldest = &o.Time
	}
	return now, oldest, nil
}

// AgentEventsSince returns up to limit live events created at or after
// since, in (created_at, id) order.
func AgentEventsSince(ctx context.Context, db bun.IDB, since time.Time, limit int) ([]*AgentEvent, error) {
	var es []*AgentEvent
	err := db.NewSelect().Model(&es).Where("e.created_at >= ?", since).Where("e.deleted_at IS NULL").
		OrderExpr("e.created_at, e.id").Limit(int64(limit)).Scan(ctx)
	return es, op("AgentEventsSince", "agent event", err)
}

// EventStamp is an event's id and creation time.
type EventStamp struct {
	ID        uuid.UUID `bun:"id"`
	CreatedAt time.Time `bun:"created_at"`
}

// AgentEventStampsSince returns the stamps of every event created at or
// after since (where a new agentEvents cursor starts: those are not news).
func AgentEventStampsSince(ctx context.Context, db bun.IDB, since time.Time) ([]EventStamp, error) {
	var out []EventStamp
	err := db.NewRaw("SELECT id, created_at FROM agent_events WHERE created_at >= ?", since).Scan(ctx, &out)
	return out, op("AgentEventStampsSince", "agent event", err)
}

// PrincipalKeys returns the key hash of each agent or generator among ids
// whose key still authenticates (the conditions of authentication: a live
// agent, a live active generator); the others are absent.
func PrincipalKeys(ctx context.Context, db bun.IDB, ids []uuid.UUID) (map[uuid.UUID]string, error) {
	out := make(map[uuid.UUID]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var rows []struct {
		ID      uuid.UUID `bun:"id"`
		PakHash string    `bun:"pak_hash"`
	}
	err := db.NewRaw(`SELECT id, coalesce(pak_hash, '') AS pak_hash FROM agents WHERE id IN (?) AND `+liveAgentKey+`
		UNION ALL
		SELECT id, coalesce(pak_hash, '') FROM generators WHERE id IN (?) AND `+liveGeneratorKey,
		bun.List(ids), bun.List(ids)).Scan(ctx, &rows)
	if err != nil {
		return nil, op("PrincipalKeys", "key", err)
	}
	for _, r := range rows {
		out[r.ID] = r.PakHash
	}
	return out, nil
}

// PrincipalKey is PrincipalKeys for the scope's generator or agent: its id
// and key hash, or Unauthenticated when its key no longer authenticates.
// Admins have no such key: uuid.Nil, "" (the admin key's rotation closes
// their websockets through another path). Other roles are Forbidden.
func PrincipalKey(ctx context.Context, db bun.IDB, scope Scope) (uuid.UUID, string, error) {
	var id uuid.UUID
	switch scope.Role {
	case RoleAdmin:
		return uuid.Nil, "", nil
	case RoleAgent:
		id = scope.AgentID
	case RoleGenerator:
		id = scope.GeneratorID
	default:
		return uuid.Nil, "", Forbidden("unknown role")
	}
	keys, err := PrincipalKeys(ctx, db, []uuid.UUID{id})
	if err != nil {
		return uuid.Nil, "", err
	}
	hash, ok := keys[id]
	if !ok {
		return uuid.Nil, "", errKeyGone
	}
	return id, hash, nil
}

var errKeyGone = Unauthenticated("the key is no longer valid")

// FeedAgent resolves the agent whose feed the scope follows (FeedAgentID;
// agentID uuid.Nil when not given) and checks that it is there: NotFound for
// an admin naming an unknown or deleted agent, Unauthenticated for a deleted
// agent itself.
func FeedAgent(ctx context.Context, db bun.IDB, scope Scope, agentID uuid.UUID) (uuid.UUID, error) {
	var given *uuid.UUID
	if agentID != uuid.Nil {
		given = &agentID
	}
	id, err := FeedAgentID(scope, given)
	if err != nil {
		return uuid.Nil, err
	}
	if _, err := GetAgent(ctx, db, scope, id, false); err != nil {
		if scope.Role == RoleAgent && ErrorKind(err) == KindNotFound {
			return uuid.Nil, errKeyGone
		}
		return uuid.Nil, err
	}
	return id, nil
}

// FeedAgentState is what the feed needs of one live agent.
type FeedAgentState struct {
	ID      uuid.UUID
	PakHash string       // its key's hash ("" without one)
	Targets []FeedTarget // in (created_at, stack) order
}

// FeedTarget is one of an agent's targets as its feed sees it.
type FeedTarget struct {
	StackID   uuid.UUID
	CreatedAt time.Time
	// Carried: the agent's feed carries the stack's objects (agentStacks:
	// the agent is ACTIVE).
	Carried bool
	// Announced, AnnouncedSeq: see MarkTargetsAnnounced, MarkTargetsHanded.
	Announced    bool
	AnnouncedSeq *int64
	// Acked: the agent reported an event about the stack's latest live
	// object.
	Acked bool
}

type feedTargetRow struct {
	AgentID      uuid.UUID     `bun:"agent_id"`
	PakHash      string        `bun:"pak_hash"`
	StackID      uuid.NullUUID `bun:"stack_id"`
	CreatedAt    sql.NullTime  `bun:"created_at"`
	Carried      bool          `bun:"carried"`
	Announced    bool          `bun:"announced"`
	AnnouncedSeq *int64        `bun:"announced_seq"`
	Acked        bool          `bun:"acked"`
}

// FeedAgentStates reads the live agents among ids with their targets, in
// one statement. Deleted and unknown agents are absent.
func FeedAgentStates(ctx context.Context, db bun.IDB, ids []uuid.UUID) (map[uuid.UUID]*FeedAgentState, error) {
	out := make(map[uuid.UUID]*FeedAgentState, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var rows []feedTargetRow
	err := db.NewRaw(`SELECT a.id AS agent_id, coalesce(a.pak_hash, '') AS pak_hash, t.stack_id, t.created_at,
		       coalesce(t.stack_id IN (`+agentStacks("a.id")+`), false) AS carried,
		       t.announced_at IS NOT NULL AS announced, t.announced_seq,
		       EXISTS (SELECT 1 FROM agent_events AS e
		                WHERE e.agent_id = a.id
		                  AND e.deployment_object_id = (SELECT d.id FROM deployment_objects AS d
		                                                 WHERE d.stack_id = t.stack_id AND d.deleted_at IS NULL
		                                                 ORDER BY d.sequence_id DESC LIMIT 1)) AS acked
		  FROM (SELECT id, pak_hash FROM agents WHERE id IN (?) AND `+liveAgentKey+`) AS a
		  LEFT JOIN agent_targets AS t ON t.agent_id = a.id
		 ORDER BY a.id, t.created_at, t.stack_id`, bun.List(ids)).Scan(ctx, &rows)
	if err != nil {
		return nil, op("FeedAgentStates", "agent", err)
	}
	for _, r := range rows {
		a := out[r.AgentID]
		if a == nil {
			a = &FeedAgentState{ID: r.AgentID, PakHash: r.PakHash, Targets: []FeedTarget{}}
			out[r.AgentID] = a
		}
		if r.StackID.Valid {
			a.Targets = append(a.Targets, FeedTarget{StackID: r.StackID.UUID, CreatedAt: r.CreatedAt.Time,
				Carried: r.Carried, Announced: r.Announced, AnnouncedSeq: r.AnnouncedSeq, Acked: r.Acked})
		}
	}
	return out, nil
}

// MarkTargetsAnnounced records that the feed hands these targeted stacks to
// the agent in sequence order (DESIGN §5: a target added while the agent was
// away is delivered on resume until then): whatever a cut leaves unsent lies
// above the agent's resume point and is replayed. Targets already announced
// keep their mark.
func MarkTargetsAnnounced(ctx context.Context, db bun.IDB, agentID uuid.UUID, stacks []uuid.UUID) error {
	if len(stacks) == 0 {
		return nil
	}
	_, err := db.NewRaw(`UPDATE agent_targets SET announced_at = now(), announced_seq = -1
		WHERE agent_id = ? AND stack_id IN (?) AND announced_at IS NULL`, agentID, bun.List(stacks)).Exec(ctx)
	return op("MarkTargetsAnnounced", "agent target", err)
}

// MarkTargetsHanded records that the latest objects of these stacks were
// handed to the agent out of sequence order at feed position seq: a resume
// at or below seq, without an event from the agent about the object,
// delivers it again (the connection may have died with it).
func MarkTargetsHanded(ctx context.Context, db bun.IDB, agentID uuid.UUID, stacks []uuid.UUID, seq int64) error {
	if len(stacks) == 0 {
		return nil
	}
	_, err := db.NewRaw(`UPDATE agent_targets SET announced_at = coalesce(announced_at, now()), announced_seq = ?
		WHERE agent_id = ? AND stack_id IN (?)`, seq, agentID, bun.List(stacks)).Exec(ctx)
	return op("MarkTargetsHanded", "agent target", err)
}
