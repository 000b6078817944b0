package feed

import (
	"context"

	"github.com/brokkr/brokkr/models"
)

// processObjects reads every committed object above the watermark, one batch
// per query, and dispatches each batch: to the feeds of the agents carrying
// its stacks, then to the dashboards watching them.
func (h *Hub) processObjects(ctx context.Context) error {
	for {
		h.mu.Lock()
		from := h.wm
		h.mu.Unlock()
		objs, err := h.loadObjects(ctx, from)
		if err != nil || len(objs) == 0 {
			return err
		}
		h.mu.Lock()
		for _, o := range objs {
			if o.DeletedAt == nil {
				h.dispatchToAgentsLocked(o)
			}
		}
		h.wm = objs[len(objs)-1].SequenceID
		h.mu.Unlock()
		h.dispatchToDashboards(ctx, objs, from)
		if len(objs) < h.opts.BatchSize {
			return nil
		}
	}
}

// dispatchToAgentsLocked hands o to every feed of the agents carrying its
// stack.
func (h *Hub) dispatchToAgentsLocked(o *models.DeploymentObject) {
	for a := range h.byStack[o.StackID] {
		for _, s := range a.feeds {
			if s.ready {
				h.deliverLocked(s, o, false)
			}
		}
	}
}

// dispatchToDashboards hands each object of a batch read above from to the
// dashboards watching its stack whose view shows it (asked of models in one
// statement). Dashboards register in the pump only, so none appears between
// the watermark's move and this. If models cannot tell, the dashboards
// concerned are cut off (they resume with after) rather than the pump
// stalling the agent feeds.
func (h *Hub) dispatchToDashboards(ctx context.Context, objs []*models.DeploymentObject, from int64) {
	h.mu.Lock()
	var views []models.StackView
	index := map[models.StackView]int{}
	for _, o := range objs {
		for s := range h.stacks[o.StackID] {
			if _, ok := index[*s.view]; !ok {
				index[*s.view] = len(views)
				views = append(views, *s.view)
			}
		}
	}
	h.mu.Unlock()
	if len(views) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	sees, err := models.StackViewsSee(ctx, h.db, views, from, objs[len(objs)-1].SequenceID)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, o := range objs {
		for s := range h.stacks[o.StackID] {
			i, ok := index[*s.view]
			switch {
			case !ok:
			case err != nil:
				// Undecided: cut the dashboard off, as a slow one; it
				// resumes with after.
				h.endLocked(s)
			case sees[i][o.ID]:
				h.deliverLocked(s, o, false)
			}
		}
	}
	if err != nil {
		h.logger.Warn("feed: reading what dashboards see; cutting them off", "err", err)
	}
}
