package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/sesamehq/sesame"
)

// A checkpoint is the head of the chain at some moment, MACed with the chain key:
//
//	<seq> <hash> <mac>      mac = HMAC-SHA256(chainKey, "sesame.audit.checkpoint.v1" 0x00 seq hash)
//
// Kept outside the store (the server logs one as "audit checkpoint: …" at start, every
// CheckpointEvery and at shutdown; `sesame audit checkpoint` prints one), it makes
// truncation detectable: someone with write access to the database can delete the newest
// events and put back an older head row, which the chain alone cannot tell from a shorter
// history, but not make the chain reach the checkpoint's seq with its hash again. Only
// the server (holding the key) can make or check a checkpoint's MAC, so a checkpoint
// cannot be forged to bless a rewritten chain.

// CheckpointPrefix starts the log line that carries a checkpoint.
const CheckpointPrefix = "audit checkpoint: "

// Checkpoint is a signed head.
type Checkpoint struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
	MAC  string `json:"mac"`
}

// String is the checkpoint's one-line form, "<seq> <hash> <mac>".
func (c Checkpoint) String() string { return fmt.Sprintf("%d %s %s", c.Seq, c.Hash, c.MAC) }

// ParseCheckpoint reads a checkpoint from its one-line form, also when it is embedded in a
// log line ("… audit checkpoint: <seq> <hash> <mac>…"); of several, the last counts.
func ParseCheckpoint(s string) (Checkpoint, error) {
	if i := strings.LastIndex(s, CheckpointPrefix); i >= 0 {
		s = s[i+len(CheckpointPrefix):]
	}
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '"' })
	bad := sesame.Errorf(sesame.CodeInvalidArgument, "checkpoint must be \"<seq> <hash> <mac>\" as `sesame audit checkpoint` prints it")
	if len(f) < 3 {
		return Checkpoint{}, bad
	}
	seq, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || seq < 0 || !isHex64(f[1]) || !isHex64(f[2]) {
		return Checkpoint{}, bad
	}
	return Checkpoint{Seq: seq, Hash: f[1], MAC: f[2]}, nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

func (k keys) checkpointMAC(seq int64, h string) string {
	m := hmac.New(sha256.New, k.chain)
	m.Write([]byte("sesame.audit.checkpoint.v1\x00"))
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(seq)))
	m.Write([]byte(h))
	return hex.EncodeToString(m.Sum(nil))
}

// Checkpoint returns the current head, signed. It does not vouch for the chain: verify it
// too.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	h, err := l.store.AuditHead(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	if p := l.keys.headProblem(h); p != "" {
		return Checkpoint{}, sesame.Errorf(sesame.CodeConflict, "the audit head is not valid (%s): run verify", p)
	}
	hash := h.Hash
	return Checkpoint{Seq: h.Seq, Hash: hash, MAC: l.keys.checkpointMAC(h.Seq, hash)}, nil
}

// VerifyCheckpoint verifies the chain as Verify does and, with cp, also that the chain
// still reaches cp: it holds event cp.Seq, with cp.Hash. A checkpoint whose MAC is not the
// server's is refused as invalid input.
func (l *Log) VerifyCheckpoint(ctx context.Context, cp *Checkpoint) (VerifyResult, error) {
	if cp != nil && !macEqual(cp.MAC, l.keys.checkpointMAC(cp.Seq, cp.Hash)) {
		return VerifyResult{}, sesame.Errorf(sesame.CodeInvalidArgument,
			"the checkpoint does not carry this server's MAC: it was altered, or made by another server")
	}
	return l.verify(ctx, cp)
}
