package agent

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
)

// KindAgent is the store object kind of an agent registration.
const KindAgent = "agent"

// TokenPrefix starts every agent token. A token is
//
//	sesame_agent_<hex of "workspace/name">_<32 base62 characters of randomness><6 base62 characters of CRC32>
//
// The agent's identity is readable from the token (it is not secret) so the server finds
// the registration without an index; the randomness (≈190 bits) is what authenticates, and
// the store holds only an HMAC of the whole token (like API keys). The checksum lets a
// scanner recognise a leaked token and the server reject a mistyped one without a lookup.
const TokenPrefix = "sesame_agent_"

const (
	base62      = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	randomLen   = 32
	checksumLen = 6
)

// Store is the storage the registry needs (objects of kind "agent").
type Store interface {
	GetObject(ctx context.Context, ws, kind, name string) (sesame.Object, error)
	ListObjects(ctx context.Context, ws, kind, after string, limit int) ([]sesame.Object, error)
	PutObject(ctx context.Context, o sesame.Object, expectVersion int64) (int64, error)
	DeleteObject(ctx context.Context, ws, kind, name string) error
}

// Hasher is the keyed hash tokens are stored under (auth.Hasher).
type Hasher interface {
	Hash(key []byte) []byte
}

// Registry keeps the agents registered per workspace.
type Registry struct {
	store Store
	hash  Hasher
	hub   *Hub
	now   func() time.Time
}

// NewRegistry returns a registry; hub gives the live status and is told of deletions.
func NewRegistry(st Store, h Hasher, hub *Hub, now func() time.Time) *Registry {
	if now == nil {
		now = time.Now
	}
	return &Registry{store: st, hash: h, hub: hub, now: now}
}

// record is the stored body of an agent.
type record struct {
	TokenHash string `json:"token_hash"`
	CreatedBy string `json:"created_by,omitempty"`
}

// View is an agent as the API shows it: its registration and its live status on the
// replica that answers.
type View struct {
	Workspace string    `json:"workspace"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Status
}

// Created is the answer to a create: the only time the token is shown.
type Created struct {
	View
	Token string `json:"token"`
}

var errBadToken = sesame.Errorf(sesame.CodeUnauthenticated, "invalid agent token")

func checkNames(ws, name string) error {
	if !sesame.ValidWorkspaceName(ws) {
		return sesame.Errorf(sesame.CodeInvalidName, "invalid workspace name: use 1-63 lowercase letters, digits, '-' or '_'")
	}
	if !sesame.ValidCredentialKey(name) {
		return sesame.Errorf(sesame.CodeInvalidName, "invalid agent name: use 1-128 letters, digits, '.', '-' or '_', starting with a letter or digit")
	}
	return nil
}

func checksum(body string) string {
	c := uint64(crc32.ChecksumIEEE([]byte(body)))
	var b [checksumLen]byte
	for i := checksumLen - 1; i >= 0; i-- {
		b[i] = base62[c%62]
		c /= 62
	}
	return string(b[:])
}

func newToken(ws, name string) (string, error) {
	var r [randomLen]byte
	for i := range r {
		// Rejection sampling keeps every character equally likely.
		for {
			var one [1]byte
			if _, err := rand.Read(one[:]); err != nil {
				return "", err
			}
			if one[0] < 248 { // 248 = 4*62
				r[i] = base62[one[0]%62]
				break
			}
		}
	}
	body := TokenPrefix + hex.EncodeToString([]byte(ws+"/"+name)) + "_" + string(r[:])
	return body + checksum(body), nil
}

// parseToken checks a token's form and checksum and returns the agent it names.
func parseToken(tok string) (ws, name string, err error) {
	rest, ok := strings.CutPrefix(tok, TokenPrefix)
	if !ok || len(tok) > 600 {
		return "", "", errBadToken
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || len(secret) != randomLen+checksumLen {
		return "", "", errBadToken
	}
	for _, c := range []byte(secret) {
		if strings.IndexByte(base62, c) < 0 {
			return "", "", errBadToken
		}
	}
	if !hmac.Equal([]byte(checksum(tok[:len(tok)-checksumLen])), []byte(tok[len(tok)-checksumLen:])) {
		return "", "", errBadToken
	}
	raw, err := hex.DecodeString(id)
	if err != nil {
		return "", "", errBadToken
	}
	ws, name, ok = strings.Cut(string(raw), "/")
	if !ok || checkNames(ws, name) != nil {
		return "", "", errBadToken
	}
	return ws, name, nil
}

// Create registers an agent and returns its token, shown this once.
func (r *Registry) Create(ctx context.Context, ws, name, createdBy string) (Created, error) {
	if err := checkNames(ws, name); err != nil {
		return Created{}, err
	}
	tok, err := newToken(ws, name)
	if err != nil {
		return Created{}, fmt.Errorf("agent: token: %w", err)
	}
	body, _ := json.Marshal(record{TokenHash: hex.EncodeToString(r.hash.Hash([]byte(tok))), CreatedBy: createdBy})
	now := r.now().UTC()
	o := sesame.Object{Workspace: ws, Kind: KindAgent, Name: name, Body: body, CreatedAt: now, UpdatedAt: now}
	if _, err := r.store.PutObject(ctx, o, 0); err != nil {
		if errors.Is(err, sesame.ErrConflict) || errors.Is(err, sesame.ErrAlreadyExists) {
			return Created{}, sesame.Errorf(sesame.CodeAlreadyExists, "agent %q already exists in workspace %q; delete it first to issue a new token", name, ws)
		}
		return Created{}, err
	}
	return Created{View: r.view(ws, name, now), Token: tok}, nil
}

func (r *Registry) view(ws, name string, created time.Time) View {
	return View{Workspace: ws, Name: name, CreatedAt: created.UTC(), Status: r.hub.Status(ws, name)}
}

// Get returns an agent with its status.
func (r *Registry) Get(ctx context.Context, ws, name string) (View, error) {
	if err := checkNames(ws, name); err != nil {
		return View{}, err
	}
	o, err := r.store.GetObject(ctx, ws, KindAgent, name)
	if errors.Is(err, sesame.ErrNotFound) {
		return View{}, sesame.Errorf(sesame.CodeNotFound, "agent %q not found in workspace %q", name, ws)
	}
	if err != nil {
		return View{}, err
	}
	return r.view(ws, name, o.CreatedAt), nil
}

// List returns a page of agents.
func (r *Registry) List(ctx context.Context, ws, after string, limit int) ([]View, error) {
	objs, err := r.store.ListObjects(ctx, ws, KindAgent, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]View, 0, len(objs))
	for _, o := range objs {
		out = append(out, r.view(ws, o.Name, o.CreatedAt))
	}
	return out, nil
}

// Delete removes an agent; its token stops working and its sessions here are dropped at
// once (on other replicas within the hub's Recheck).
func (r *Registry) Delete(ctx context.Context, ws, name string) error {
	if err := checkNames(ws, name); err != nil {
		return err
	}
	err := r.store.DeleteObject(ctx, ws, KindAgent, name)
	if errors.Is(err, sesame.ErrNotFound) {
		return sesame.Errorf(sesame.CodeNotFound, "agent %q not found in workspace %q", name, ws)
	}
	if err != nil {
		return err
	}
	r.hub.Disconnect(ws, name)
	r.hub.Forget(ws, name)
	return nil
}

// Authenticate checks an agent token. It returns the agent it belongs to and a check that
// the registration still holds that token (for the hub's rechecks).
func (r *Registry) Authenticate(ctx context.Context, tok string) (ws, name string, stillValid func(context.Context) bool, err error) {
	ws, name, err = parseToken(tok)
	if err != nil {
		return "", "", nil, err
	}
	want := r.hash.Hash([]byte(tok))
	check := func(ctx context.Context) (bool, error) {
		o, err := r.store.GetObject(ctx, ws, KindAgent, name)
		if errors.Is(err, sesame.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		var rec record
		if json.Unmarshal(o.Body, &rec) != nil {
			return false, nil
		}
		got, err := hex.DecodeString(rec.TokenHash)
		return err == nil && hmac.Equal(got, want), nil
	}
	ok, err := check(ctx)
	if err != nil {
		return "", "", nil, err
	}
	if !ok {
		return "", "", nil, errBadToken
	}
	return ws, name, func(ctx context.Context) bool {
		ok, err := check(ctx)
		return ok || err != nil // a store outage does not drop live agents
	}, nil
}

// Serve runs an authenticated agent's link on the hub (see Hub.Serve).
func (r *Registry) Serve(ctx context.Context, conn net.Conn, info SessionInfo, stillValid func(context.Context) bool) error {
	return r.hub.Serve(ctx, conn, info, stillValid)
}
