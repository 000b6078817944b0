package readplan

import (
	"encoding/hex"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// jsonw appends JSON values exactly as the executor's marshalers write
// them (graph/scalar over gqlgen's graphql.Marshal…): strings through
// gqlgen's own escaping, times as RFC 3339 with nanoseconds, a zero UUID or
// time as null. Values that need no escaping are appended directly, which
// is what gqlgen's writer does with them, without a Marshaler per value.
type jsonw struct{ b []byte }

// Write lets gqlgen's marshalers write here.
func (w *jsonw) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *jsonw) raw(s string) { w.b = append(w.b, s...) }

func (w *jsonw) null() { w.raw("null") }

// str writes a string as graphql.MarshalString does.
func (w *jsonw) str(s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			graphql.MarshalString(s).MarshalGQL(w)
			return
		}
	}
	w.b = append(w.b, '"')
	w.b = append(w.b, s...)
	w.b = append(w.b, '"')
}

func (w *jsonw) optStr(s *string) {
	if s == nil {
		w.null()
		return
	}
	w.str(*s)
}

// id writes a UUID as graphql.MarshalUUID does (its canonical string).
func (w *jsonw) id(id uuid.UUID) {
	if id == uuid.Nil {
		w.null()
		return
	}
	var buf [38]byte
	buf[0], buf[37] = '"', '"'
	hex.Encode(buf[1:9], id[0:4])
	buf[9] = '-'
	hex.Encode(buf[10:14], id[4:6])
	buf[14] = '-'
	hex.Encode(buf[15:19], id[6:8])
	buf[19] = '-'
	hex.Encode(buf[20:24], id[8:10])
	buf[24] = '-'
	hex.Encode(buf[25:37], id[10:16])
	w.b = append(w.b, buf[:]...)
}

func (w *jsonw) boolean(b bool) { w.b = strconv.AppendBool(w.b, b) }

func (w *jsonw) int64(n int64) { w.b = strconv.AppendInt(w.b, n, 10) }

func (w *jsonw) int(n int) { w.int64(int64(n)) }

func (w *jsonw) optInt32(n *int32) {
	if n == nil {
		w.null()
		return
	}
	w.int64(int64(*n))
}

// time writes a time as graphql.MarshalTime does (no character of it needs
// escaping).
func (w *jsonw) time(t time.Time) {
	if t.IsZero() {
		w.null()
		return
	}
	w.b = append(w.b, '"')
	w.b = t.AppendFormat(w.b, time.RFC3339Nano)
	w.b = append(w.b, '"')
}

func (w *jsonw) optTime(t *time.Time) {
	if t == nil {
		w.null()
		return
	}
	w.time(*t)
}

func (w *jsonw) status(s models.AgentStatus) { w.str(string(s)) }

// key writes a member's name and its colon.
func (w *jsonw) key(name string) {
	w.str(name)
	w.b = append(w.b, ':')
}
