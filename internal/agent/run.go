package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/yamux"

	"github.com/sesamehq/sesame"
)

// Config configures an agent process.
type Config struct {
	// Servers are the base URLs (http:// or https://) of the Sesame replicas to hold a
	// connection to; the agent connects to every one (see README: several replicas).
	Servers []string
	Token   sesame.Secret
	Allow   *Allowlist
	Version string
	Logger  *slog.Logger
	// Resolver and Dial reach the private network; nil: the system's.
	Resolver Resolver
	Dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	// HTTPClient makes the WebSocket handshake (TLS settings); nil: a default client.
	HTTPClient *http.Client
	// KeepAlive is the ping interval on the link; a link silent for about twice that is
	// dropped and dialled again. 0 means 3s.
	KeepAlive time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnection attempts (doubling,
	// with jitter); 0 means 250ms and 15s.
	MinBackoff, MaxBackoff time.Duration
}

// Log messages tests and operators look for.
const (
	MsgConnected    = "agent connected"
	MsgDisconnected = "agent disconnected"
	MsgRefused      = "agent refused target"
)

func (c *Config) defaults() error {
	if len(c.Servers) == 0 {
		return errors.New("agent: no server given (--server or SESAME_AGENT_SERVER)")
	}
	if c.Token.IsZero() {
		return errors.New("agent: no token given (--token or SESAME_AGENT_TOKEN)")
	}
	if c.Allow == nil || c.Allow.Empty() {
		return errors.New("agent: the allowlist is empty: give --allow HOST:PORT or CIDR (SESAME_AGENT_ALLOW) for what the agent may reach")
	}
	for _, s := range c.Servers {
		if _, err := connectURL(s); err != nil {
			return err
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.Dial == nil {
		d := &net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}
		c.Dial = d.DialContext
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, TLSHandshakeTimeout: 10 * time.Second}}
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 2 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 250 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 15 * time.Second
	}
	return nil
}

// connectURL turns a server's base URL into the WebSocket URL of its connect route.
func connectURL(server string) (string, error) {
	u, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("agent: server %q must be an http:// or https:// URL", server)
	}
	switch u.Scheme {
	case "https", "wss":
		u.Scheme = "wss"
	case "http", "ws":
		u.Scheme = "ws"
	default:
		return "", fmt.Errorf("agent: server %q must be an http:// or https:// URL", server)
	}
	u.Path += ConnectPath
	return u.String(), nil
}

// Run holds a connection to every server until ctx ends, reconnecting with backoff and
// jitter, and serves the streams the servers open. It returns an error only for a bad
// configuration.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, s := range cfg.Servers {
		wg.Go(func() { cfg.loop(ctx, s) })
	}
	wg.Wait()
	return nil
}

func (c *Config) loop(ctx context.Context, server string) {
	log := c.Logger.With("server", server)
	backoff := c.MinBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := c.connectOnce(ctx, server, log)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = c.MinBackoff // it was up a while: this is a new outage
		}
		wait := time.Duration(float64(backoff) * (0.5 + rand.Float64())) // ±50% jitter
		log.Warn(MsgDisconnected, "err", err, "retry_in", wait.Round(time.Millisecond).String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, c.MaxBackoff)
	}
}

// yamuxConfig is the session configuration of both ends: keep-alives that notice a dead
// link within a few seconds.
func yamuxConfig(keepAlive time.Duration, log *slog.Logger) *yamux.Config {
	yc := yamux.DefaultConfig()
	yc.EnableKeepAlive = true
	yc.KeepAliveInterval = keepAlive
	yc.ConnectionWriteTimeout = 2 * keepAlive
	yc.StreamOpenTimeout = 4 * keepAlive
	yc.StreamCloseTimeout = time.Minute
	yc.MaxStreamWindowSize = 1 << 20 // bulk: the default 256 KiB gave 97 MB/s, 1 MiB 255 MB/s (BENCHMARKS.md)
	yc.LogOutput = nil
	yc.Logger = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	return yc
}

func (c *Config) connectOnce(ctx context.Context, server string, log *slog.Logger) error {
	u, _ := connectURL(server)
	hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	ws, resp, err := websocket.Dial(hctx, u, &websocket.DialOptions{
		HTTPClient: c.HTTPClient,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + string(c.Token.Reveal())}, VersionHeader: {c.Version}},
	})
	cancel()
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return fmt.Errorf("server refused the connection: %s", resp.Status)
		}
		return fmt.Errorf("dial: %w", err)
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	nc := websocket.NetConn(sctx, ws, websocket.MessageBinary)
	sess, err := yamux.Server(nc, yamuxConfig(c.KeepAlive, log))
	if err != nil {
		nc.Close()
		return err
	}
	defer sess.Close()
	log.Info(MsgConnected, "allow", c.Allow.String())
	// A WebSocket ping too, so that a proxy on the way sees traffic and a half-dead
	// connection is noticed at the WebSocket layer as well.
	go func() {
		t := time.NewTicker(c.KeepAlive)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-sess.CloseChan():
				return
			case <-t.C:
				pctx, cancel := context.WithTimeout(sctx, 2*c.KeepAlive)
				err := ws.Ping(pctx)
				cancel()
				if err != nil && sctx.Err() == nil {
					log.Warn("agent ping failed", "err", err)
					sess.Close()
					return
				}
			}
		}
	}()
	go func() {
		select {
		case <-sctx.Done():
			sess.Close()
		case <-sess.CloseChan():
		}
	}()
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			if ctx.Err() != nil {
				ws.Close(websocket.StatusGoingAway, "agent stopping")
			}
			return fmt.Errorf("session ended: %w", err)
		}
		go c.serveStream(sctx, st, log)
	}
}

// serveStream answers one stream: checks the requested target against the allowlist,
// dials it and pipes bytes until either side ends.
func (c *Config) serveStream(ctx context.Context, st *yamux.Stream, log *slog.Logger) {
	defer st.Close()
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	var req openRequest
	if err := readJSONLine(st, &req); err != nil {
		_ = writeJSONLine(st, openReply{Code: codeBadRequest, Message: "bad stream header"})
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ap, err := c.Allow.Check(dctx, c.Resolver, req.Addr)
	if errors.Is(err, ErrRefused) {
		log.Warn(MsgRefused, "target", req.Addr)
		_ = writeJSONLine(st, openReply{Code: codeRefused, Message: "the agent's allowlist does not include " + req.Addr})
		return
	}
	if err != nil {
		_ = writeJSONLine(st, openReply{Code: codeDialFailed, Message: "could not resolve the target"})
		return
	}
	up, err := c.Dial(dctx, "tcp", ap.String())
	if err != nil {
		log.Info("agent dial failed", "target", req.Addr, "err", err)
		_ = writeJSONLine(st, openReply{Code: codeDialFailed, Message: "could not connect to " + req.Addr})
		return
	}
	defer up.Close()
	if err := writeJSONLine(st, openReply{OK: true}); err != nil {
		return
	}
	pipe(st, up)
}

// pipe copies both ways and closes both ends as soon as either direction ends.
func pipe(a, b io.ReadWriteCloser) {
	done := make(chan struct{}, 2)
	cp := func(dst io.Writer, src io.Reader) {
		buf := make([]byte, 32<<10)
		_, _ = io.CopyBuffer(dst, src, buf)
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	a.Close()
	b.Close()
	<-done
}
