package feed

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/brokkr/brokkr/models"
)

// ListenerApplicationName is the application_name of the hub's LISTEN
// connection (visible in pg_stat_activity).
const ListenerApplicationName = "brokkr-feed-listener"

// notifier keeps one dedicated pgx connection LISTENing on the hub's
// channel (bun's listener needs bun on pgdriver; we run on pgx). After every
// (re)connection it calls ready, since notifications sent while it was away
// are lost: the hub then reads what it missed from the tables. When the
// connection has been silent for pingEvery it pings it (bounded by
// pingTimeout), so that a connection whose peer vanished without a word
// (a half-dead TCP connection, on which a wait for notifications never
// ends) is found and replaced. It reconnects with exponential backoff.
// Modelled on riverqueue/river's internal notifier.
type notifier struct {
	dsn         string
	channel     string
	logger      *slog.Logger
	pingEvery   time.Duration
	pingTimeout time.Duration
	ready       func()               // listening (again): catch up
	lost        func()               // not listening any more (until ready)
	notify      func(payload string) // one notification (ids only)
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// run listens until ctx ends.
func (n *notifier) run(ctx context.Context) {
	backoff := minBackoff
	for ctx.Err() == nil {
		err := n.session(ctx, func() { backoff = minBackoff })
		if ctx.Err() != nil {
			return
		}
		n.logger.Warn("feed: listener connection lost; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// session is one connection's life: connect, LISTEN, tell ready, then wait
// for notifications until the connection fails.
func (n *notifier) session(ctx context.Context, listening func()) error {
	conn, err := n.connect(ctx)
	if err != nil {
		return err
	}
	defer func() {
		n.lost()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.pingTimeout)
		defer cancel()
		conn.Close(cctx)
	}()
	listening()
	n.ready()
	for {
		if err := n.waitOnce(ctx, conn); err != nil {
			return err
		}
	}
}

// connect opens the connection (within pingTimeout unless the DSN says
// otherwise) and LISTENs (within pingTimeout).
func (n *notifier) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(n.dsn)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = ListenerApplicationName
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = n.pingTimeout
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, n.pingTimeout)
	defer cancel()
	if _, err := conn.Exec(lctx, "LISTEN "+pgx.Identifier{n.channel}.Sanitize()); err != nil {
		conn.Close(lctx)
		return nil, err
	}
	return conn, nil
}

// waitOnce waits up to pingEvery for a notification and hands it on; after
// that much silence it pings the connection instead. A wait cut short by its
// deadline leaves the pgx connection usable (pgconn's deadline handler).
func (n *notifier) waitOnce(ctx context.Context, conn *pgx.Conn) error {
	wctx, cancel := context.WithTimeout(ctx, n.pingEvery)
	note, err := conn.WaitForNotification(wctx)
	cancel()
	switch {
	case err == nil:
		n.notify(note.Payload)
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case !errors.Is(err, context.DeadlineExceeded):
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, n.pingTimeout)
	defer cancel()
	return conn.Ping(pctx)
}

// onNotification acts on one notification payload (ids only, migration
// 0003): "d" new objects; "t:<agent>" its targets; "a:<agent>" and
// "g:<generator>" a principal's key, status or deletion; "k" the admin key.
func (h *Hub) onNotification(payload string) {
	kind, rest, _ := strings.Cut(payload, ":")
	switch kind {
	case "t", "a", "g":
		id, err := uuid.Parse(rest)
		if err != nil {
			h.logger.Warn("feed: bad notification payload", "payload", payload)
			return
		}
		h.markDirty(id)
		h.principalChanged(kind, id)
	case "k":
		if f := h.opts.OnPrincipalChange; f != nil {
			f(models.AdminScope)
		}
	default: // "d" and anything else: new objects
		h.wake()
	}
}

// principalChanged tells OnPrincipalChange of an agent or generator change.
func (h *Hub) principalChanged(kind string, id uuid.UUID) {
	f := h.opts.OnPrincipalChange
	if f == nil {
		return
	}
	switch kind {
	case "a":
		f(models.AgentScope(id))
	case "g":
		f(models.GeneratorScope(id))
	}
}
