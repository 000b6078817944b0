package feed

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/brokkr/brokkr/models"
)

// ListenerApplicationName is the application_name of the hub's LISTEN
// connection (visible in pg_stat_activity).
const ListenerApplicationName = "brokkr-feed-listener"

// listen keeps one dedicated connection LISTENing on the hub's channel,
// reconnecting with backoff. Each (re)connection triggers a full catch-up
// from the tables, since notifications sent while disconnected are lost.
func (h *Hub) listen(ctx context.Context) {
	<-h.started
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := h.listenOnce(ctx, func() { backoff = 100 * time.Millisecond })
		if ctx.Err() != nil {
			return
		}
		h.logger.Warn("feed: listener connection lost; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (h *Hub) listenOnce(ctx context.Context, connected func()) error {
	cfg, err := pgx.ParseConfig(h.dsn)
	if err != nil {
		return err
	}
	cfg.RuntimeParams["application_name"] = ListenerApplicationName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{h.channel}.Sanitize()); err != nil {
		return err
	}
	connected()
	// Anything sent while we were not listening: read it from the tables.
	h.markResync()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		h.handle(n.Payload)
	}
}

// handle acts on one notification payload (ids only).
func (h *Hub) handle(payload string) {
	kind, rest, _ := strings.Cut(payload, ":")
	switch kind {
	case "t", "a", "g":
		id, err := uuid.Parse(rest)
		if err != nil {
			h.logger.Warn("feed: bad notification payload", "payload", payload)
			return
		}
		h.markDirty(id)
		if f := h.opts.OnPrincipalChange; f != nil {
			switch kind {
			case "a":
				f(models.Scope{Role: models.RoleAgent, AgentID: id})
			case "g":
				f(models.Scope{Role: models.RoleGenerator, GeneratorID: id})
			}
		}
	case "k":
		if f := h.opts.OnPrincipalChange; f != nil {
			f(models.AdminScope)
		}
	default: // "d" and anything else: new objects
		h.wake()
	}
}
