package readplan

import (
	"container/list"
	"context"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// Statements run on one pooled connection through pgx itself (as
// models.scanPrepared's do), a level's statements in one pgx.Batch: one
// round trip, binary results.
//
// Each statement is prepared once per connection. The pool's connections
// run in pgx's exec mode (bun sends final SQL text; see models.OpenWith),
// and pgx sends a batch in its connection's mode (its "TODO: changing mode
// per batch"), but a batch uses the statements prepared on its connection
// by their SQL text. So the planner prepares its statements itself
// (Conn.Prepare with name = SQL text), and keeps at most maxPrepared per
// connection, deallocating the least recently used: the texts vary with
// the queries' shapes, which clients choose. This goes when pgx lets a
// batch use the statement cache in another mode than its connection's.

// maxPrepared bounds the planner's prepared statements per connection (a
// variable for the tests).
var maxPrepared = 256

// preparedKey is where a connection keeps its prepared statements
// (pgconn's CustomData, which lives as long as the connection).
const preparedKey = "brokkr.readplan.prepared"

// prepared is a connection's prepared statements, most recently used first.
type prepared struct {
	order *list.List
	at    map[string]*list.Element
}

func preparedOn(c *pgx.Conn) *prepared {
	data := c.PgConn().CustomData()
	p, ok := data[preparedKey].(*prepared)
	if !ok {
		p = &prepared{order: list.New(), at: map[string]*list.Element{}}
		data[preparedKey] = p
	}
	return p
}

// prepare makes sure c has sql prepared.
func prepare(ctx context.Context, c *pgx.Conn, sql string, m *metrics) error {
	p := preparedOn(c)
	if e, ok := p.at[sql]; ok {
		p.order.MoveToFront(e)
		return nil
	}
	if p.order.Len() >= maxPrepared {
		old := p.order.Back()
		if err := c.Deallocate(ctx, old.Value.(string)); err != nil {
			return err
		}
		delete(p.at, old.Value.(string))
		p.order.Remove(old)
	}
	if _, err := c.Prepare(ctx, sql, sql); err != nil {
		return err
	}
	m.prepares.Inc()
	p.at[sql] = p.order.PushFront(sql)
	return nil
}

// onSend, set by tests, sees every statement sent.
var onSend atomic.Pointer[func(sql string, args []any)]

// send runs stmts in one round trip, each read by its read function.
func send(ctx context.Context, c *pgx.Conn, stmts []*stmt, m *metrics) error {
	if len(stmts) == 0 {
		return nil
	}
	m.batches.Inc()
	m.statements.Add(float64(len(stmts)))
	b := &pgx.Batch{}
	observe := onSend.Load()
	for _, s := range stmts {
		if observe != nil {
			(*observe)(s.sql, s.args)
		}
		if err := prepare(ctx, c, s.sql, m); err != nil {
			return err
		}
		b.Queue(s.sql, s.args...)
	}
	br := c.SendBatch(ctx, b)
	for _, s := range stmts {
		if err := readOne(br, s); err != nil {
			_ = br.Close()
			return err
		}
	}
	return br.Close()
}

func readOne(br pgx.BatchResults, s *stmt) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	if err := s.read(rows); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}
