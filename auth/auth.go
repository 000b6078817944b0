// Package auth authenticates Brokkr API keys (DESIGN §4): it reads
// `Authorization: Bearer <key>` from HTTP requests and websocket
// connection_init payloads, resolves the key's hash to a principal in the
// database on every request (so a rotated or deleted key stops working at
// once, on every replica), and puts the caller's models.Scope in the context.
// It also holds the per-generator rate limiter and the last_active_at upkeep.
package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/apikey"
	"github.com/brokkr/brokkr/models"
)

// CloseUnauthenticated is the websocket close code for a missing or bad key
// in connection_init (the graphql-ws convention, 4401 Unauthorized).
const CloseUnauthenticated = 4401

type scopeKey struct{}
type failureKey struct{}
type wsKeyHashKey struct{}

// WithScope returns ctx carrying the caller's scope.
func WithScope(ctx context.Context, s models.Scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, s)
}

// ForContext returns the caller's scope, if the request was authenticated.
func ForContext(ctx context.Context) (models.Scope, bool) {
	s, ok := ctx.Value(scopeKey{}).(models.Scope)
	return s, ok
}

// withFailure records why authentication failed (a key was sent but is not
// valid), so the GraphQL layer can answer UNAUTHENTICATED with that reason.
func withFailure(ctx context.Context, err error) context.Context {
	return context.WithValue(ctx, failureKey{}, err)
}

// Failure returns the error to report to a caller without a scope:
// the reason its key was refused, or "missing API key".
func Failure(ctx context.Context) error {
	if err, ok := ctx.Value(failureKey{}).(error); ok {
		return err
	}
	return Unauthenticated("missing API key: send Authorization: Bearer <key>")
}

// Unauthenticated is the error for a missing, malformed or unknown key.
func Unauthenticated(msg string) *models.Error {
	return &models.Error{Kind: models.KindUnauthenticated, Message: msg}
}

// ErrNoCredentials means the request carried no Authorization value.
var ErrNoCredentials = errors.New("auth: no credentials")

// BearerKey extracts the key from an Authorization value ("Bearer <key>",
// scheme case-insensitive). It returns ErrNoCredentials for an empty value
// and an UNAUTHENTICATED error for anything that is not a Bearer Brokkr key.
func BearerKey(header string) (string, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return "", ErrNoCredentials
	}
	scheme, key, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", Unauthenticated("malformed Authorization: expected Bearer <key>")
	}
	key = strings.TrimSpace(key)
	if !apikey.Parse(key) {
		return "", Unauthenticated("invalid API key")
	}
	return key, nil
}

// Authenticator resolves keys to scopes. It keeps no cache: each request
// costs one indexed lookup, and revocation is immediate everywhere.
type Authenticator struct {
	DB     bun.IDB
	Logger *slog.Logger
}

// Authenticate returns the scope behind an Authorization value.
// ErrNoCredentials when there is none; UNAUTHENTICATED for a bad key.
func (a *Authenticator) Authenticate(ctx context.Context, header string) (models.Scope, error) {
	key, err := BearerKey(header)
	if err != nil {
		return models.Scope{}, err
	}
	scope, err := models.PrincipalForKeyHash(ctx, a.DB, apikey.Hash(key))
	if err != nil {
		if models.ErrorKind(err) == models.KindUnauthenticated {
			return models.Scope{}, Unauthenticated("invalid API key")
		}
		return models.Scope{}, err
	}
	return scope, nil
}

// Middleware authenticates each HTTP request. A request without a key goes
// on without a scope (the GraphQL layer answers UNAUTHENTICATED for every
// field but introspection); a request with a bad key also goes on, carrying
// the reason, so the answer is a regular GraphQL error (a transient database
// fault while checking the key becomes UNAVAILABLE the same way, any other
// failure INTERNAL).
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		scope, err := a.Authenticate(ctx, r.Header.Get("Authorization"))
		switch {
		case err == nil:
			ctx = WithScope(ctx, scope)
			if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
				// A websocket lives on: its operations re-check the key.
				key, _ := BearerKey(r.Header.Get("Authorization"))
				ctx = context.WithValue(ctx, wsKeyHashKey{}, apikey.Hash(key))
			}
		case errors.Is(err, ErrNoCredentials):
		case models.ErrorKind(err) == models.KindUnauthenticated, models.ErrorKind(err) == models.KindUnavailable:
			ctx = withFailure(ctx, err) // a transient database fault stays retryable
		default:
			a.logger().ErrorContext(ctx, "auth: key lookup failed", "err", err)
			ctx = withFailure(ctx, &models.Error{Kind: models.KindInternal, Message: "internal error", Err: err})
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// WebsocketInit authenticates a websocket's connection_init payload,
// {"Authorization": "Bearer …"}: it returns the connection's context,
// carrying the caller's scope, or an error whose kind is KindUnauthenticated
// for a missing or bad key (the transport closes the connection with
// CloseUnauthenticated) and KindInternal when the key could not be checked.
func (a *Authenticator) WebsocketInit(ctx context.Context, payload map[string]any) (context.Context, error) {
	header, _ := payload["Authorization"].(string)
	if header == "" {
		// Some clients send the key under a lower-case name.
		header, _ = payload["authorization"].(string)
	}
	scope, err := a.Authenticate(ctx, header)
	if err != nil {
		switch {
		case errors.Is(err, ErrNoCredentials):
			return ctx, &models.Error{Kind: models.KindUnauthenticated, Message: "unauthenticated: missing API key in connection_init payload"}
		case models.ErrorKind(err) == models.KindUnauthenticated:
			return ctx, &models.Error{Kind: models.KindUnauthenticated, Message: "unauthenticated: invalid API key"}
		}
		a.logger().ErrorContext(ctx, "auth: key lookup failed", "err", err)
		return ctx, &models.Error{Kind: models.KindInternal, Message: "internal error", Err: err}
	}
	key, _ := BearerKey(header)
	ctx = context.WithValue(ctx, wsKeyHashKey{}, apikey.Hash(key))
	return WithScope(ctx, scope), nil
}

// Detached returns a context that carries what authentication put in ctx
// (the principal, the reason a key was refused, a websocket's key hash)
// and nothing else: neither ctx's end nor its other values. A websocket
// outlives its upgrade request, and holding the request's context would
// hold net/http's per-request state for the connection's life.
func Detached(ctx context.Context) context.Context {
	out := context.Background()
	for _, k := range []any{scopeKey{}, failureKey{}, wsKeyHashKey{}} {
		if v := ctx.Value(k); v != nil {
			out = context.WithValue(out, k, v)
		}
	}
	return out
}

// Recheck re-authenticates a websocket connection's key before each of its
// operations, so a key rotated or deleted while the connection is open stops
// working at once for queries and mutations sent over it too (the feed closes
// its subscriptions). Plain HTTP requests were authenticated just now: nil.
func (a *Authenticator) Recheck(ctx context.Context) error {
	hash, ok := ctx.Value(wsKeyHashKey{}).(string)
	if !ok {
		return nil
	}
	scope, err := models.PrincipalForKeyHash(ctx, a.DB, hash)
	if err != nil {
		if models.ErrorKind(err) == models.KindUnauthenticated {
			return Unauthenticated("invalid API key: it was rotated or its owner deleted")
		}
		return err
	}
	if prev, ok := ForContext(ctx); !ok || !samePrincipal(prev, scope) {
		return Unauthenticated("invalid API key")
	}
	return nil
}

// Credential is who a websocket's key authenticated, with the key's hash,
// so that the key can be checked again while the connection lives
// (Revoked).
type Credential struct {
	Scope   models.Scope
	keyHash string
}

// CredentialOf returns the credential of a websocket's context: what its
// connection_init (WebsocketInit), or its upgrade request's Authorization
// header (Middleware), authenticated.
func CredentialOf(ctx context.Context) (Credential, bool) {
	scope, ok := ForContext(ctx)
	hash, hashed := ctx.Value(wsKeyHashKey{}).(string)
	if !ok || !hashed {
		return Credential{}, false
	}
	return Credential{Scope: scope, keyHash: hash}, true
}

// Revoked reports, for each credential, whether its key no longer
// authenticates the principal it did (rotated, its owner deleted or
// deactivated), reading every key in one statement.
func (a *Authenticator) Revoked(ctx context.Context, creds []Credential) ([]bool, error) {
	seen := map[string]struct{}{}
	var hashes []string
	for _, c := range creds {
		if _, ok := seen[c.keyHash]; !ok {
			seen[c.keyHash] = struct{}{}
			hashes = append(hashes, c.keyHash)
		}
	}
	owners, err := models.PrincipalsForKeyHashes(ctx, a.DB, hashes)
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(creds))
	for i, c := range creds {
		owner, ok := owners[c.keyHash]
		out[i] = !ok || !samePrincipal(owner, c.Scope)
	}
	return out, nil
}

// samePrincipal tells whether two scopes are the same principal (whatever
// else authentication read along, such as a generator's rate limit).
func samePrincipal(a, b models.Scope) bool {
	return a.Role == b.Role && a.GeneratorID == b.GeneratorID && a.AgentID == b.AgentID
}

func (a *Authenticator) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}
