package sesame_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/sesamehq/sesame"
)

const canary = "CANARY-7f3a"

func TestSecretNeverPrints(t *testing.T) {
	s := sesame.NewSecret([]byte(canary))
	ptr := &s
	holder := struct {
		Name  string
		Token sesame.Secret
		Ptr   *sesame.Secret
	}{"n", s, ptr}
	for _, verb := range []string{"%v", "%s", "%q", "%x", "%X", "%#v", "%+v", "%d", "%T=%[1]v", "%10s", "%-20v"} {
		for name, arg := range map[string]any{"value": s, "pointer": ptr, "struct": holder, "slice": []sesame.Secret{s}, "map": map[string]sesame.Secret{"k": s}} {
			out := fmt.Sprintf(verb, arg)
			if strings.Contains(out, canary) || strings.Contains(out, fmt.Sprintf("%x", canary)) || strings.Contains(out, fmt.Sprintf("%X", canary)) {
				t.Errorf("Sprintf(%q, %s) = %q shows the secret", verb, name, out)
			}
			if name == "value" && !strings.Contains(out, "redacted") {
				t.Errorf("Sprintf(%q, secret) = %q, want it to say redacted", verb, out)
			}
		}
	}
	if got := fmt.Sprint(s); got != "[redacted]" {
		t.Errorf("Sprint = %q", got)
	}
	if got := s.String(); got != "[redacted]" {
		t.Errorf("String = %q", got)
	}
	if got := s.GoString(); strings.Contains(got, canary) {
		t.Errorf("GoString = %q", got)
	}
}

func TestSecretMarshalRedacts(t *testing.T) {
	s := sesame.NewSecret([]byte(canary))
	type holder struct {
		User   string                   `json:"user" xml:"user"`
		Token  sesame.Secret            `json:"token" xml:"token"`
		Ptr    *sesame.Secret           `json:"ptr" xml:"ptr"`
		Any    any                      `json:"any" xml:"-"`
		Keyed  map[string]sesame.Secret `xml:"-"`
		Listed []sesame.Secret
	}
	h := holder{User: "u", Token: s, Ptr: &s, Any: s, Keyed: map[string]sesame.Secret{"k": s}, Listed: []sesame.Secret{s}}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(canary)) {
		t.Fatalf("json.Marshal = %s shows the secret", b)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("json.Marshal produced invalid JSON %s: %v", b, err)
	}
	if back["token"] != "[redacted]" {
		t.Errorf("token marshalled as %v", back["token"])
	}
	b, err = json.MarshalIndent(h, "", "  ")
	if err != nil || bytes.Contains(b, []byte(canary)) {
		t.Fatalf("json.MarshalIndent = %s, %v", b, err)
	}
	b, err = xml.Marshal(h)
	if err != nil || bytes.Contains(b, []byte(canary)) {
		t.Fatalf("xml.Marshal = %s, %v", b, err)
	}
	text, err := s.MarshalText()
	if err != nil || bytes.Contains(text, []byte(canary)) {
		t.Fatalf("MarshalText = %s, %v", text, err)
	}
}

func TestSecretLogRedacts(t *testing.T) {
	s := sesame.NewSecret([]byte(canary))
	var buf bytes.Buffer
	for name, h := range map[string]slog.Handler{
		"text": slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}),
		"json": slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}),
	} {
		buf.Reset()
		log := slog.New(h)
		log.Info("value", "secret", s)
		log.Info("pointer", "secret", &s)
		log.Info("any", slog.Any("secret", s))
		log.Info("group", slog.Group("g", "secret", s))
		log.With("secret", s).Warn("with")
		log.WithGroup("grp").Error("in group", "secret", s)
		log.Info("struct", "holder", struct{ Token sesame.Secret }{s})
		log.Info("error", "err", fmt.Errorf("wrapped: %v", s))
		out := buf.String()
		if strings.Contains(out, canary) {
			t.Errorf("%s handler output shows the secret:\n%s", name, out)
		}
		if n := strings.Count(out, "[redacted]"); n < 7 {
			t.Errorf("%s handler: %d redactions, want at least 7:\n%s", name, n, out)
		}
	}
}

func TestSecretInErrors(t *testing.T) {
	s := sesame.NewSecret([]byte(canary))
	base := sesame.Errorf(sesame.CodeInvalidField, "bad value %v for %s", s, "field")
	wrapped := fmt.Errorf("outer %s: %w", s, base)
	joined := errors.Join(wrapped, fmt.Errorf("%q %x %#v %+v", s, s, s, s))
	for _, err := range []error{base, wrapped, joined} {
		for _, out := range []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if strings.Contains(out, canary) {
				t.Errorf("error text %q shows the secret", out)
			}
		}
	}
	if sesame.ErrorCode(joined) != sesame.CodeInvalidField {
		t.Errorf("ErrorCode through wrap and join = %s", sesame.ErrorCode(joined))
	}
	if !errors.Is(wrapped, &sesame.Error{Code: sesame.CodeInvalidField}) {
		t.Error("errors.Is on the code failed through a wrap")
	}
}

func TestSecretEqualRevealWipe(t *testing.T) {
	a := sesame.NewSecret([]byte("abc"))
	tests := []struct {
		b    sesame.Secret
		want bool
	}{
		{sesame.NewSecret([]byte("abc")), true},
		{sesame.NewSecret([]byte("abd")), false},
		{sesame.NewSecret([]byte("ab")), false},
		{sesame.NewSecret([]byte("abcd")), false},
		{sesame.Secret{}, false},
	}
	for _, tt := range tests {
		if got := a.Equal(tt.b); got != tt.want {
			t.Errorf("Equal(%q) = %v, want %v", tt.b.Reveal(), got, tt.want)
		}
		if got := tt.b.Equal(a); got != tt.want {
			t.Errorf("Equal is not symmetric for %q", tt.b.Reveal())
		}
	}
	if !(sesame.Secret{}).Equal(sesame.NewSecret(nil)) || !(sesame.Secret{}).Equal(sesame.NewSecret([]byte{})) {
		t.Error("empty secrets are not equal")
	}
	if !(sesame.Secret{}).IsZero() || a.IsZero() {
		t.Error("IsZero is wrong")
	}
	if string(a.Reveal()) != "abc" {
		t.Errorf("Reveal = %q", a.Reveal())
	}
	b := []byte("wipe me")
	w := sesame.NewSecret(b)
	w.Wipe()
	if !bytes.Equal(b, make([]byte, len(b))) {
		t.Errorf("Wipe left %q", b)
	}
}
