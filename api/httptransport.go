package api

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/brokkr/brokkr/models"
	"github.com/brokkr/brokkr/reqtext"
	"github.com/brokkr/brokkr/wstransport"
)

// The HTTP transports. gqlgen's own (transport.POST, transport.GET) encode
// the whole answer again and write some bad-request errors without a code;
// these do neither.

// postTransport serves GraphQL over POST (application/json) as gqlgen's
// transport.POST does (the same content negotiation and status codes), but
// writes the answer differently: gqlgen encodes the whole response again with
// encoding/json, which validates and copies the data the executor has just
// encoded, about an eighth of the Go CPU of BenchmarkDashboardQuery's 5 MB
// answer. Here the executor's data is written as it is, and the few other
// members are encoded around it.
type postTransport struct{}

var _ graphql.Transport = postTransport{}

const (
	contentTypeJSON            = "application/json"
	contentTypeGraphQLResponse = "application/graphql-response+json"
)

func (postTransport) Supports(r *http.Request) bool {
	if wstransport.IsWebsocket(r) || r.Method != http.MethodPost {
		return false
	}
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mediaType == contentTypeJSON
}

func (postTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	start := graphql.Now()
	var params graphql.RawParams
	body, err := io.ReadAll(r.Body)
	if err == nil {
		err = reqtext.Decode(body, &params)
	}
	if err != nil {
		refuse(w, r, exec, http.StatusBadRequest, "the request body is not a JSON GraphQL request")
		return
	}
	execute(w, r, exec, &params, start, false)
}

// getTransport serves GraphQL queries over GET (query, operationName, and
// variables and extensions as JSON, in the URL), as gqlgen's transport.GET
// does, with the same answer writing as postTransport, and with a coded
// error (BAD_USER_INPUT) for bad parameters, which gqlgen's writes bare.
type getTransport struct{}

var _ graphql.Transport = getTransport{}

func (getTransport) Supports(r *http.Request) bool {
	return !wstransport.IsWebsocket(r) && r.Method == http.MethodGet
}

// unsupported answers what no transport serves (another method, another
// content type) with a coded error rather than gqlgen's bare one. It is the
// last transport.
type unsupported struct{}

var _ graphql.Transport = unsupported{}

func (unsupported) Supports(*http.Request) bool { return true }

func (unsupported) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	refuse(w, r, exec, http.StatusBadRequest, "send GraphQL requests as POST with Content-Type application/json, as GET, or over a websocket")
}

func (getTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	start := graphql.Now()
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		refuse(w, r, exec, http.StatusBadRequest, "the query string is malformed")
		return
	}
	params := graphql.RawParams{Query: q.Get("query"), OperationName: q.Get("operationName")}
	for name, dest := range map[string]any{"variables": &params.Variables, "extensions": &params.Extensions} {
		if v := q.Get(name); v != "" && reqtext.Decode([]byte(v), dest) != nil {
			refuse(w, r, exec, http.StatusBadRequest, name+" is not a JSON object")
			return
		}
	}
	execute(w, r, exec, &params, start, true)
}

// execute runs one request for both transports: a request that cannot run
// at all (it does not parse or validate) is answered 422 under
// application/json and 400 under graphql-response+json, as gqlgen answers
// (errors of another kind, 200); a subscription is refused at once, 400,
// pointing at websockets; with queriesOnly (GET) anything but a query is
// refused, 406: a link or a prefetch must not change anything. A request
// refused by the rate limiter is answered 429 with Retry-After (seconds, as
// extensions.retryAfter).
func execute(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, params *graphql.RawParams, start time.Time, queriesOnly bool) {
	ctx := r.Context()
	contentType := responseContentType(r)
	w.Header().Set("Content-Type", contentType)
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	rc, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		if errcode.GetErrorKind(errs) == errcode.KindProtocol {
			if contentType == contentTypeGraphQLResponse {
				w.WriteHeader(http.StatusBadRequest)
			} else {
				w.WriteHeader(http.StatusUnprocessableEntity)
			}
		}
		writeResponse(w, exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs))
		return
	}
	if rc.Operation.Operation == ast.Subscription {
		// gqlgen would answer with the first event, whenever that comes,
		// holding the request (and shutdown) until then.
		refuse(w, r, exec, http.StatusBadRequest, "subscriptions are served over websockets only: open a websocket on /query (graphql-transport-ws or graphql-ws)")
		return
	}
	if queriesOnly && rc.Operation.Operation != ast.Query {
		refuse(w, r, exec, http.StatusNotAcceptable, "GET requests only allow queries; send mutations with POST")
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, rc)
	resp := responses(ctx)
	if retryAfter, limited := retryHint(resp); retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		if limited {
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}
	writeResponse(w, resp)
}

// retryHint reads a response's errors for extensions.retryAfter (RATE_LIMITED,
// and any other retryable error that carries one): the longest (0 when there
// is none), which HTTP sends as Retry-After; and whether the request was
// refused as a whole by the rate limiter (RATE_LIMITED, no data), which
// HTTP answers 429.
func retryHint(resp *graphql.Response) (retryAfter int, limited bool) {
	if resp == nil {
		return 0, false
	}
	for _, e := range resp.Errors {
		s, ok := e.Extensions["retryAfter"].(int)
		if !ok {
			continue
		}
		retryAfter = max(retryAfter, s, 1)
		if e.Extensions["code"] == string(models.KindRateLimited) {
			limited = true
		}
	}
	return retryAfter, limited && (len(resp.Data) == 0 || string(resp.Data) == "null")
}

// refuse answers a request that is not a GraphQL request it can run: bad
// input, coded by the error presenter (exec.DispatchError).
func refuse(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, status int, msg string) {
	w.Header().Set("Content-Type", responseContentType(r))
	w.WriteHeader(status)
	writeResponse(w, exec.DispatchError(r.Context(), gqlerror.List{gqlerror.WrapIfUnwrapped(models.Invalid("", "%s", msg))}))
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil { // plain data: cannot happen
		panic(err)
	}
	return b
}

// responseContentType negotiates the answer's media type from Accept as
// gqlgen's transport does: application/json when Accept is absent or a
// wildcard, or names it first; graphql-response+json when named first, or
// when nothing in Accept is understood.
func responseContentType(r *http.Request) string {
	accept := r.Header.Get("Accept")
	if accept == "" {
		return contentTypeJSON
	}
	for part := range strings.SplitSeq(accept, ",") {
		mediaType, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mediaType {
		case "*/*", "application/*", contentTypeJSON:
			return contentTypeJSON
		case contentTypeGraphQLResponse:
			return contentTypeGraphQLResponse
		}
	}
	return contentTypeGraphQLResponse
}

// writeResponse writes resp as encoding/json would (the members of
// graphql.Response, in its order), with the data as the executor encoded it,
// uncopied.
func writeResponse(w io.Writer, resp *graphql.Response) {
	if resp == nil {
		resp = &graphql.Response{}
	}
	var head, tail bytes.Buffer
	head.WriteByte('{')
	if len(resp.Errors) > 0 {
		head.WriteString(`"errors":`)
		head.Write(mustJSON(resp.Errors))
		head.WriteByte(',')
	}
	head.WriteString(`"data":`)
	data := []byte(resp.Data)
	if len(data) == 0 {
		data = []byte("null")
	}
	if resp.Label != "" {
		tail.WriteString(`,"label":`)
		tail.Write(mustJSON(resp.Label))
	}
	if len(resp.Path) > 0 {
		tail.WriteString(`,"path":`)
		tail.Write(mustJSON(resp.Path))
	}
	if resp.HasNext != nil {
		tail.WriteString(`,"hasNext":`)
		tail.Write(mustJSON(*resp.HasNext))
	}
	if len(resp.Extensions) > 0 {
		tail.WriteString(`,"extensions":`)
		tail.Write(mustJSON(resp.Extensions))
	}
	tail.WriteByte('}')
	// A failed write is the client gone: nothing to tell it.
	if _, err := w.Write(head.Bytes()); err != nil {
		return
	}
	if _, err := w.Write(data); err != nil {
		return
	}
	_, _ = w.Write(tail.Bytes())
}
