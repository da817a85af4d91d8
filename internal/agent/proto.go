// Package agent is the on-premise agent (PRODUCT.md C11): the process that runs inside a
// private network and dials out to Sesame (Run), and the server's side that holds those
// connections and opens streams through them (Hub).
//
// The wire: the agent opens one WebSocket to the server's /v1/agents/connect, presenting
// its token in Authorization, and carries a yamux session over it (binary messages). The
// server opens one yamux stream per TCP connection it needs inside the network. On each
// stream the server first writes one JSON line naming the target, {"addr":"host:port"},
// and the agent answers one JSON line, {"ok":true} or {"ok":false,"code":…}; after that
// the stream carries the raw bytes of the TCP connection both ways (TLS to the upstream is
// end to end: the agent sees only what it forwards). A stream closed by the server closes
// the upstream connection entirely (no half-close).
package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ConnectPath is the server route agents dial.
const ConnectPath = "/v1/agents/connect"

// VersionHeader carries the agent's version on the connect request.
const VersionHeader = "Sesame-Agent-Version"

// Refusal codes an agent answers with.
const (
	codeRefused    = "target_refused"
	codeDialFailed = "dial_failed"
	codeBadRequest = "bad_request"
)

// maxLine bounds a header line.
const maxLine = 1024

type openRequest struct {
	Addr string `json:"addr"`
}

type openReply struct {
	OK      bool   `json:"ok"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// readLine reads one '\n'-terminated line byte by byte, so that nothing after it is
// consumed: the raw stream follows.
func readLine(r io.Reader) ([]byte, error) {
	var buf []byte
	b := make([]byte, 1)
	for len(buf) <= maxLine {
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		if b[0] == '\n' {
			return buf, nil
		}
		buf = append(buf, b[0])
	}
	return nil, errors.New("agent: header line too long")
}

func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func readJSONLine(r io.Reader, v any) error {
	line, err := readLine(r)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("agent: bad header line: %w", err)
	}
	return nil
}
