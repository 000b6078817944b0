package api_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/brokkr/brokkr/auth"
)

// The hand-written counterpart of the dashboard query as a whole endpoint:
// it authenticates the key, reads the same rows over the same pool with
// one statement per level (as handDashboard), assembles the same document
// the GraphQL query answers (cursors included) and encodes it with
// encoding/json. BenchmarkDashboardQuery checks once that both documents
// are equal, so the comparison is of equal work.

type hjDoc struct {
	Data struct {
		Generators hjGenConn `json:"generators"`
	} `json:"data"`
}

type hjGenConn struct {
	TotalCount int `json:"totalCount"`
	PageInfo   struct {
		HasNextPage bool    `json:"hasNextPage"`
		EndCursor   *string `json:"endCursor"`
	} `json:"pageInfo"`
	Nodes []*hjGen `json:"nodes"`
}

type hjGen struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	IsActive     bool       `json:"isActive"`
	LastActiveAt *time.Time `json:"lastActiveAt"`
	Stacks       struct {
		TotalCount int        `json:"totalCount"`
		Nodes      []*hjStack `json:"nodes"`
	} `json:"stacks"`
}

type hjRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type hjAnnotation struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type hjStack struct {
	ID                string          `json:"id"`
	Name              string          `json:"name"`
	Labels            []string        `json:"labels"`
	Annotations       []*hjAnnotation `json:"annotations"`
	Generator         *hjRef          `json:"generator"`
	DeploymentObjects struct {
		TotalCount int       `json:"totalCount"`
		Edges      []*hjEdge `json:"edges"`
	} `json:"deploymentObjects"`
}

type hjEdge struct {
	Cursor string    `json:"cursor"`
	Node   *hjObject `json:"node"`
}

type hjObject struct {
	ID               string    `json:"id"`
	SequenceID       int64     `json:"sequenceId"`
	YamlChecksum     string    `json:"yamlChecksum"`
	IsDeletionMarker bool      `json:"isDeletionMarker"`
	SubmittedAt      time.Time `json:"submittedAt"`
	Events           struct {
		TotalCount int        `json:"totalCount"`
		Nodes      []*hjEvent `json:"nodes"`
	} `json:"events"`
}

type hjEvent struct {
	ID        string    `json:"id"`
	EventType string    `json:"eventType"`
	Status    string    `json:"status"`
	Message   string    `json:"message"`
	CreatedAt time.Time `json:"createdAt"`
	agentID   string
	Agent     *hjAgent `json:"agent"`
}

type hjAgent struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ClusterName string `json:"clusterName"`
}

// handDashboardHandler serves the hand-written dashboard endpoint.
func handDashboardHandler(db *sql.DB, authn *auth.Authenticator, g, s, o, e int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := authn.Authenticate(r.Context(), r.Header.Get("Authorization")); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		doc, err := handDashboardDoc(r.Context(), db, g, s, o, e)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	})
}

func handCursor(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func handDashboardDoc(ctx context.Context, db *sql.DB, g, s, o, e int) (*hjDoc, error) {
	query := func(q string, args []any, dest func() []any, each func()) error {
		rs, err := db.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			if err := rs.Scan(dest()...); err != nil {
				return err
			}
			each()
		}
		return rs.Err()
	}
	doc := &hjDoc{}
	gc := &doc.Data.Generators
	gc.Nodes = []*hjGen{}
	gens := map[string]*hjGen{}
	var genIDs []string
	var created time.Time
	var lastCursor string
	var total int
	var gen *hjGen
	if err := query(`SELECT id, name, is_active, last_active_at, created_at, count(*) OVER () FROM generators WHERE deleted_at IS NULL ORDER BY created_at, id LIMIT $1`,
		[]any{g + 1}, func() []any {
			gen = &hjGen{}
			return []any{&gen.ID, &gen.Name, &gen.IsActive, &gen.LastActiveAt, &created, &total}
		}, func() {
			gc.TotalCount = total
			if len(gc.Nodes) == g {
				gc.PageInfo.HasNextPage = true
				return
			}
			gen.Stacks.Nodes = []*hjStack{}
			gc.Nodes = append(gc.Nodes, gen)
			gens[gen.ID] = gen
			genIDs = append(genIDs, gen.ID)
			lastCursor = handCursor("c:" + strconv.FormatInt(created.UnixMicro(), 10) + ":" + gen.ID)
		}); err != nil {
		return nil, err
	}
	if len(gc.Nodes) > 0 {
		gc.PageInfo.EndCursor = &lastCursor
	}

	stacks := map[string]*hjStack{}
	var stackIDs []string
	var st *hjStack
	var parent string
	var rn int
	if err := query(`SELECT id, generator_id, name, total, rn FROM (SELECT s.*, count(*) OVER w AS total, row_number() OVER (w ORDER BY created_at, id) AS rn
		FROM stacks AS s WHERE generator_id = ANY($1::uuid[]) AND deleted_at IS NULL WINDOW w AS (PARTITION BY generator_id)) AS x WHERE rn <= $2 ORDER BY generator_id, rn`,
		[]any{genIDs, s}, func() []any {
			st = &hjStack{Labels: []string{}, Annotations: []*hjAnnotation{}}
			return []any{&st.ID, &parent, &st.Name, &total, &rn}
		}, func() {
			p := gens[parent]
			p.Stacks.TotalCount = total
			st.Generator = &hjRef{ID: p.ID, Name: p.Name}
			st.DeploymentObjects.Edges = []*hjEdge{}
			p.Stacks.Nodes = append(p.Stacks.Nodes, st)
			stacks[st.ID] = st
			stackIDs = append(stackIDs, st.ID)
		}); err != nil {
		return nil, err
	}
	var a, b string
	if err := query(`SELECT stack_id, label FROM stack_labels WHERE stack_id = ANY($1::uuid[]) ORDER BY stack_id, label`,
		[]any{stackIDs}, func() []any { return []any{&parent, &a} }, func() {
			stacks[parent].Labels = append(stacks[parent].Labels, a)
		}); err != nil {
		return nil, err
	}
	if err := query(`SELECT stack_id, key, value FROM stack_annotations WHERE stack_id = ANY($1::uuid[]) ORDER BY stack_id, key`,
		[]any{stackIDs}, func() []any { return []any{&parent, &a, &b} }, func() {
			stacks[parent].Annotations = append(stacks[parent].Annotations, &hjAnnotation{Key: a, Value: b})
		}); err != nil {
		return nil, err
	}

	objs := map[string]*hjObject{}
	var objIDs []string
	var obj *hjObject
	if err := query(`SELECT id, stack_id, sequence_id, yaml_checksum, is_deletion_marker, submitted_at, total FROM (
		SELECT d.*, count(*) OVER w AS total, row_number() OVER (w ORDER BY sequence_id DESC) AS rn
		FROM deployment_objects AS d WHERE stack_id = ANY($1::uuid[]) AND deleted_at IS NULL WINDOW w AS (PARTITION BY stack_id)) AS x WHERE rn <= $2 ORDER BY stack_id, rn`,
		[]any{stackIDs, o}, func() []any {
			obj = &hjObject{}
			return []any{&obj.ID, &parent, &obj.SequenceID, &obj.YamlChecksum, &obj.IsDeletionMarker, &obj.SubmittedAt, &total}
		}, func() {
			p := stacks[parent]
			p.DeploymentObjects.TotalCount = total
			obj.Events.Nodes = []*hjEvent{}
			p.DeploymentObjects.Edges = append(p.DeploymentObjects.Edges, &hjEdge{Cursor: handCursor("s:" + strconv.FormatInt(obj.SequenceID, 10)), Node: obj})
			objs[obj.ID] = obj
			objIDs = append(objIDs, obj.ID)
		}); err != nil {
		return nil, err
	}

	var events []*hjEvent
	agentIDs := []string{}
	seen := map[string]bool{}
	var ev *hjEvent
	if err := query(`SELECT id, deployment_object_id, agent_id, event_type, status, message, created_at, total FROM (
		SELECT e.*, count(*) OVER w AS total, row_number() OVER (w ORDER BY created_at DESC, id) AS rn
		FROM agent_events AS e WHERE deployment_object_id = ANY($1::uuid[]) AND deleted_at IS NULL WINDOW w AS (PARTITION BY deployment_object_id)) AS x WHERE rn <= $2 ORDER BY deployment_object_id, rn`,
		[]any{objIDs, e}, func() []any {
			ev = &hjEvent{}
			return []any{&ev.ID, &parent, &ev.agentID, &ev.EventType, &ev.Status, &ev.Message, &ev.CreatedAt, &total}
		}, func() {
			p := objs[parent]
			p.Events.TotalCount = total
			p.Events.Nodes = append(p.Events.Nodes, ev)
			events = append(events, ev)
			if !seen[ev.agentID] {
				seen[ev.agentID] = true
				agentIDs = append(agentIDs, ev.agentID)
			}
		}); err != nil {
		return nil, err
	}
	agents := map[string]*hjAgent{}
	var ag *hjAgent
	if err := query(`SELECT id, name, cluster_name FROM agents WHERE id = ANY($1::uuid[])`,
		[]any{agentIDs}, func() []any {
			ag = &hjAgent{}
			return []any{&ag.ID, &ag.Name, &ag.ClusterName}
		}, func() { agents[ag.ID] = ag }); err != nil {
		return nil, err
	}
	for _, ev := range events {
		ev.Agent = agents[ev.agentID]
	}
	return doc, nil
}
