package crypt_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"

	"github.com/sesamehq/sesame/internal/crypt"
)

func TestLeak(t *testing.T) {
	raw := bytes.Repeat([]byte{0xAB}, 32)
	k, _ := crypt.NewMasterKey(bytes.Clone(raw))
	for _, v := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d", "%o", "%b", "%c"} {
		s := fmt.Sprintf(v, k)
		t.Logf("%s: leak=%v %.150s", v, bytes.Contains([]byte(s), []byte("171 171 171")) || bytes.Contains([]byte(s), []byte("abab")), s)
	}
	t.Logf("value %%v: %.200s", fmt.Sprintf("%v", *k))
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "k", k)
	t.Log(buf.String())
}
