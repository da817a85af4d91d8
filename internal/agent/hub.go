package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/sesamehq/sesame"
)

// Errors the hub's dialer returns; the gateway passes them to the caller as they are.
var (
	// ErrUnavailable: no live agent session of that name on this replica.
	ErrUnavailable = &sesame.Error{Code: sesame.CodeAgentUnavailable, RetryAfter: 2 * time.Second,
		Message: "the connection's agent is not connected (or its link just dropped); retry shortly"}
	// ErrLost: the agent's link dropped while the call was under way.
	ErrLost = &sesame.Error{Code: sesame.CodeAgentUnavailable, RetryAfter: 2 * time.Second,
		Message: "the connection's agent went away during the call; retry shortly"}
)

// SessionInfo describes a connecting agent process.
type SessionInfo struct {
	Workspace, Name string
	Version         string
	Remote          string // its address as the server sees it
}

// Event is a change the hub reports for the audit trail.
type Event struct {
	Workspace, Name string
	Action          string // "agent.connect", "agent.disconnect", "agent.target_refused"
	Detail          string // version and address, or the refused target
	Source          string
}

// HubConfig holds a hub's dependencies.
type HubConfig struct {
	Logger *slog.Logger
	// Events receives connects, disconnects and refused targets; nil: logged only.
	Events func(ctx context.Context, e Event)
	// KeepAlive as in Config; 0 means 2s (a dead link is dropped within about 3 times that).
	KeepAlive time.Duration
	// Recheck is how often a session's token is checked again against the store (so that
	// an agent deleted on another replica is dropped here too); 0 means 5s.
	Recheck time.Duration
	Now     func() time.Time
}

// Hub holds the agent sessions connected to this replica and opens streams through them.
type Hub struct {
	cfg HubConfig

	mu       sync.Mutex
	sessions map[string][]*session // by workspace/name
	lastSeen map[string]time.Time
	next     map[string]uint64
	calls    map[string]int64 // calls in flight, by workspace/name
	streams  atomic.Int64     // streams open through every agent (calls and idle pooled connections)
	seq      atomic.Uint64
}

type session struct {
	id        uint64
	info      SessionInfo
	connected time.Time
	mux       *yamux.Session
	inFlight  atomic.Int64
}

// NewHub returns an empty hub.
func NewHub(cfg HubConfig) *Hub {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 2 * time.Second
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Hub{cfg: cfg, sessions: map[string][]*session{}, lastSeen: map[string]time.Time{}, next: map[string]uint64{}, calls: map[string]int64{}}
}

func key(ws, name string) string { return ws + "/" + name }

// MaxSessionsPerAgent bounds the links one agent (one token) may hold to one replica.
const MaxSessionsPerAgent = 32

// openTimeout bounds the exchange that opens a stream: longer than the agent's own dial
// timeout (15s), so that a slow upstream is reported by the agent, not taken for a dead link.
const openTimeout = 20 * time.Second

// Serve runs one agent session over conn until it ends, ctx ends, Disconnect drops it, or
// stillValid (called every Recheck) returns false. It records the connect and the
// disconnect.
func (h *Hub) Serve(ctx context.Context, conn net.Conn, info SessionInfo, stillValid func(context.Context) bool) error {
	mux, err := yamux.Client(conn, yamuxConfig(h.cfg.KeepAlive, h.cfg.Logger))
	if err != nil {
		conn.Close()
		return err
	}
	s := &session{id: h.seq.Add(1), info: info, connected: h.cfg.Now(), mux: mux}
	k := key(info.Workspace, info.Name)
	h.mu.Lock()
	if len(h.sessions[k]) >= MaxSessionsPerAgent {
		h.mu.Unlock()
		mux.Close()
		h.cfg.Logger.Warn("agent session refused: too many", "workspace", info.Workspace, "agent", info.Name, "remote", info.Remote)
		return fmt.Errorf("agent: %s already has %d sessions", k, MaxSessionsPerAgent)
	}
	h.sessions[k] = append(h.sessions[k], s)
	h.lastSeen[k] = s.connected
	h.mu.Unlock()
	h.event(ctx, Event{Workspace: info.Workspace, Name: info.Name, Action: "agent.connect", Source: info.Remote,
		Detail: fmt.Sprintf("version %s", info.Version)})
	h.cfg.Logger.Info("agent session up", "workspace", info.Workspace, "agent", info.Name, "remote", info.Remote, "version", info.Version)

	// Streams are opened by the server only: any the agent opens are closed at once, so
	// that they cannot hold buffers here.
	go func() {
		for {
			st, err := mux.AcceptStream()
			if err != nil {
				return
			}
			st.Close()
		}
	}()
	t := time.NewTicker(h.cfg.Recheck)
	defer t.Stop()
	reason := "link closed"
loop:
	for {
		select {
		case <-mux.CloseChan():
			break loop
		case <-ctx.Done():
			reason = "server stopping"
			break loop
		case <-t.C:
			if stillValid != nil && !stillValid(ctx) {
				reason = "agent deleted or token replaced"
				break loop
			}
		}
	}
	mux.Close()
	h.mu.Lock()
	list := h.sessions[k]
	for i, x := range list {
		if x == s {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(h.sessions, k)
	} else {
		h.sessions[k] = list
	}
	h.lastSeen[k] = h.cfg.Now()
	h.mu.Unlock()
	h.event(context.WithoutCancel(ctx), Event{Workspace: info.Workspace, Name: info.Name, Action: "agent.disconnect", Source: info.Remote, Detail: reason})
	h.cfg.Logger.Info("agent session down", "workspace", info.Workspace, "agent", info.Name, "remote", info.Remote, "reason", reason)
	return nil
}

func (h *Hub) event(ctx context.Context, e Event) {
	if h.cfg.Events != nil {
		h.cfg.Events(ctx, e)
	}
}

// Disconnect drops every session of an agent (it was deleted).
func (h *Hub) Disconnect(ws, name string) {
	h.mu.Lock()
	list := append([]*session(nil), h.sessions[key(ws, name)]...)
	h.mu.Unlock()
	for _, s := range list {
		s.mux.Close()
	}
}

// Close drops every session (the server is stopping: agents reconnect elsewhere).
func (h *Hub) Close() {
	h.mu.Lock()
	var all []*session
	for _, l := range h.sessions {
		all = append(all, l...)
	}
	h.mu.Unlock()
	for _, s := range all {
		s.mux.Close()
	}
}

// Status is what this replica knows of an agent.
type Status struct {
	Online   bool          `json:"online"`
	Sessions []SessionView `json:"sessions"`
	LastSeen *time.Time    `json:"last_seen,omitempty"`
	InFlight int64         `json:"calls_in_flight"`
}

// SessionView is one connected agent process.
type SessionView struct {
	Version     string    `json:"version"`
	Remote      string    `json:"remote"`
	ConnectedAt time.Time `json:"connected_at"`
	OpenStreams int64     `json:"open_streams"` // calls and idle pooled connections
}

// Status reports an agent's sessions on this replica.
func (h *Hub) Status(ws, name string) Status {
	k := key(ws, name)
	h.mu.Lock()
	defer h.mu.Unlock()
	st := Status{Sessions: []SessionView{}}
	for _, s := range h.sessions[k] {
		if s.mux.IsClosed() {
			continue
		}
		st.Sessions = append(st.Sessions, SessionView{Version: s.info.Version, Remote: s.info.Remote, ConnectedAt: s.connected.UTC(), OpenStreams: s.inFlight.Load()})
	}
	st.InFlight = h.calls[k]
	st.Online = len(st.Sessions) > 0
	if t, ok := h.lastSeen[k]; ok {
		t = t.UTC()
		if st.Online {
			t = h.cfg.Now().UTC()
		}
		st.LastSeen = &t
	}
	return st
}

// Forget drops what the hub remembers of a deleted agent.
func (h *Hub) Forget(ws, name string) {
	h.mu.Lock()
	delete(h.lastSeen, key(ws, name))
	h.mu.Unlock()
}

// Begin counts a call through the agent as in flight until end is called.
func (h *Hub) Begin(ws, name string) (end func()) {
	k := key(ws, name)
	h.mu.Lock()
	h.calls[k]++
	h.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			if h.calls[k]--; h.calls[k] <= 0 {
				delete(h.calls, k)
			}
			h.mu.Unlock()
		})
	}
}

// Sessions counts the live sessions, for metrics.
func (h *Hub) Sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, l := range h.sessions {
		n += len(l)
	}
	return n
}

// StreamsInFlight counts the streams open through agents, for metrics.
func (h *Hub) StreamsInFlight() int64 { return h.streams.Load() }

// candidates returns the agent's live sessions, fewest calls in flight first, ties broken
// round-robin.
func (h *Hub) candidates(k string) []*session {
	h.mu.Lock()
	list := append([]*session(nil), h.sessions[k]...)
	start := h.next[k]
	h.next[k]++
	h.mu.Unlock()
	if len(list) == 0 {
		return nil
	}
	rot := int(start % uint64(len(list)))
	list = append(list[rot:], list[:rot]...)
	sort.SliceStable(list, func(i, j int) bool { return list[i].inFlight.Load() < list[j].inFlight.Load() })
	return list
}

// RefusedError is the agent's refusal of a target outside its allowlist.
type RefusedError struct{ Target string }

func (e *RefusedError) Error() string {
	return "agent_target_refused: the agent's allowlist does not include " + e.Target
}

// Unwrap makes the refusal a client error with a stable code.
func (e *RefusedError) Unwrap() error {
	return sesame.Errorf(sesame.CodeAgentTargetRefused, "the agent refused %s: it is not in the agent's own allowlist (--allow)", e.Target)
}

// Dial opens a TCP connection to addr inside the agent's network, through one of the
// agent's live sessions; a session that turns out dead is skipped.
func (h *Hub) Dial(ctx context.Context, ws, name, addr string) (net.Conn, error) {
	for _, s := range h.candidates(key(ws, name)) {
		if s.mux.IsClosed() {
			continue
		}
		c, err := h.open(ctx, s, addr)
		var re *RefusedError
		if errors.As(err, &re) {
			h.event(ctx, Event{Workspace: ws, Name: name, Action: "agent.target_refused", Source: s.info.Remote, Detail: addr})
			return nil, err
		}
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil && !s.mux.IsClosed() {
			var se *sesame.Error
			if errors.As(err, &se) {
				return nil, err // the agent's answer (dial failed): another agent would answer the same
			}
		}
		if err == nil {
			return c, nil
		}
	}
	return nil, ErrUnavailable
}

func (h *Hub) open(ctx context.Context, s *session, addr string) (net.Conn, error) {
	st, err := s.mux.OpenStream()
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { st.Close() })
	_ = st.SetDeadline(time.Now().Add(openTimeout))
	var rep openReply
	err = writeJSONLine(st, openRequest{Addr: addr})
	if err == nil {
		err = readJSONLine(st, &rep)
	}
	_ = st.SetDeadline(time.Time{})
	if !stop() || err != nil {
		st.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	}
	switch {
	case rep.OK:
	case rep.Code == codeRefused:
		st.Close()
		return nil, &RefusedError{Target: addr}
	default:
		st.Close()
		return nil, sesame.Errorf(sesame.CodeUpstreamError, "the agent could not connect to %s", addr)
	}
	s.inFlight.Add(1)
	h.streams.Add(1)
	return &streamConn{Stream: st, s: s, h: h}, nil
}

// streamConn is a stream as a net.Conn. A read that ends because the agent's link dropped
// fails with ErrLost, not a clean EOF, so a cut-off response is not taken for a whole one.
type streamConn struct {
	*yamux.Stream
	s      *session
	h      *Hub
	closed atomic.Bool
}

func (c *streamConn) Read(p []byte) (int, error) {
	n, err := c.Stream.Read(p)
	if err != nil && c.s.mux.IsClosed() {
		return n, fmt.Errorf("%w (%v)", ErrLost, err)
	}
	return n, err
}

func (c *streamConn) Write(p []byte) (int, error) {
	n, err := c.Stream.Write(p)
	if err != nil && c.s.mux.IsClosed() {
		return n, fmt.Errorf("%w (%v)", ErrLost, err)
	}
	return n, err
}

func (c *streamConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.s.inFlight.Add(-1)
		c.h.streams.Add(-1)
	}
	return c.Stream.Close()
}

var _ io.ReadWriteCloser = (*streamConn)(nil)
