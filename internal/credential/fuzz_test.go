package credential_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/credential"
)

// fuzzSeeds are valid bodies of every type and malformed ones. They are also stored in
// testdata/fuzz/FuzzParse so that a plain `go test` runs them.
var fuzzSeeds = []string{
	`{"type":"api_key","fields":{"value":"k-123456789"}}`,
	`{"type":"api_key","fields":{"value":"k-123456789","name":"api_key","in":"query"}}`,
	`{"type":"basic","fields":{"username":"alice","password":"pw-123456789"}}`,
	`{"type":"bearer","fields":{"token":"t-123456789","scheme":"Token"}}`,
	`{"type":"secret","fields":{"value":"s-123456789"}}`,
	`{"type":"secret","fields":{"value":{"keep":true}}}`,
	`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"c","client_secret":"cs-123456789","token_url":"https://a.example/token","scopes":"a b,c"}}`,
	`{"type":"oauth2","fields":{"grant":"authorization_code","client_id":"c","provider":"google","scopes":["openid","email"]}}`,
	`{"type":"jwt_bearer","fields":{"alg":"HS256","secret":"hs-123456789","payload":{"iss":"me"},"headers":{"kid":"1"}}}`,
	`{"type":"jwt_bearer","fields":{"alg":"RS256","private_key":"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----","token_url":"https://oauth2.googleapis.com/token"}}`,
	`{"type":"jwt_bearer","fields":{"alg":"ES256","pkcs12":"MIIKpkcs12-123456789","pkcs12_password":"pp-123456789"}}`,
	// malformed
	``,
	`{`,
	`null`,
	`[]`,
	`"secret"`,
	`{"type":"secret","fields":{"value":"s-123456789"}}]`,
	`{"type":"secret","fields":{"value":"s-123456789"}} {"x":1}`,
	`{"type":"secret","fields":{"value":"s-123456789","valu":"s-123456789"}}`,
	`{"type":"secret","fields":{"value":"s-123456789"},"extra":1}`,
	`{"type":"kerberos","fields":{"value":"s-123456789"}}`,
	`{"type":5,"fields":{"value":"s-123456789"}}`,
	`{"type":"secret","fields":["s-123456789"]}`,
	`{"type":"secret","fields":{"value":{"keep":"s-123456789"}}}`,
	`{"type":"secret","fields":{"value":["s-123456789"]}}`,
	`{"Type":"basic","FIELDS":{"username":"a:b","password":"pw-123456789"}}`,
	`{"type":"api_key","fields":{"value":"k-123456789","name":"X Key\r\n"}}`,
	`{"type":"oauth2","fields":{"grant":"client_credentials","client_id":"c","client_secret":"cs-123456789","token_url":"https://u:cs-123456789@a.example/"}}`,
	`{"type":"jwt_bearer","fields":{"alg":"RS256","secret":"hs-123456789","private_key":"pk-123456789","pkcs12":"p12-123456789"}}`,
	`{"type":"jwt_bearer","fields":{"alg":"HS256","secret":"hs-123456789","pkcs12_password":"pp-123456789","payload":"x"}}`,
	`{"type":"secret","fields":{"value":"first-123456789","value":""}}`,
	`{"type":"secret","fields":{"value":"a"},"fields":{"value":"\u0000\ud800"}}`,
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := credential.Parse(body)
		checkParseInvariants(t, body, in, err)

		// ParseUnchecked + Validate is Parse in two steps.
		un, uerr := credential.ParseUnchecked(body)
		if uerr == nil {
			uerr = un.Validate()
		}
		if (err == nil) != (uerr == nil) || (err != nil && err.Error() != uerr.Error()) {
			t.Fatalf("Parse = %v but ParseUnchecked+Validate = %v", err, uerr)
		}

		// The outcome must not depend on what the secret values are, only on whether
		// they are there: replace each one by a canary and parse again.
		spans, secrets := secretSpans(body)
		if len(spans) == 0 {
			return
		}
		swapped := replaceSpans(body, spans, []byte(`"`+canary+`"`))
		in2, err2 := credential.Parse(swapped)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("changing secret values changed the outcome: %v, then %v\nbody: %q\nswapped: %q", err, err2, body, swapped)
		}
		if err != nil {
			msg, msg2 := err.Error(), err2.Error()
			for _, s := range secrets {
				if strings.Contains(msg, s) && !strings.Contains(msg2, s) {
					t.Fatalf("error %q quotes the secret value %q", msg, s)
				}
			}
			if strings.Contains(msg2, canary) && !bytes.Contains(body, []byte(canary)) {
				t.Fatalf("error %q quotes a secret value", msg2)
			}
			if msg != msg2 {
				t.Fatalf("error message depends on a secret value: %q, then %q", msg, msg2)
			}
			return
		}
		if !reflect.DeepEqual(in.Public, in2.Public) {
			t.Fatalf("changing secret values changed the public fields: %v, then %v", in.Public, in2.Public)
		}
		for name, s := range in2.Secrets {
			if !s.Keep && string(s.Value.Reveal()) != canary {
				t.Fatalf("secret %q was not read from where the test put the canary (body %q)", name, swapped)
			}
		}
	})
}

func checkParseInvariants(t *testing.T, body []byte, in credential.Input, err error) {
	t.Helper()
	if err != nil {
		var e *sesame.Error
		if !errors.As(err, &e) || e.Code == sesame.CodeInternal || e.Code == sesame.CodeSecretRequired {
			t.Fatalf("Parse returned a non-client error %v (%T)", err, err)
		}
		if len(err.Error()) > 600 {
			t.Fatalf("error message is %d bytes; it echoes input: %q", len(err.Error()), err)
		}
		return
	}
	if in.Kind == nil {
		t.Fatal("success without a kind")
	}
	for name, v := range in.Public {
		f, ok := in.Kind.Field(name)
		if !ok {
			t.Fatalf("public key %q is not a field of %s", name, in.Kind.Name)
		}
		if f.Secret {
			t.Fatalf("secret field %q of %s is in Public", name, in.Kind.Name)
		}
		if s, ok := v.(string); ok && strings.ContainsAny(s, "\r\n\x00") {
			t.Fatalf("public field %q holds CR, LF or NUL", name)
		}
	}
	for _, name := range in.Kind.SecretFields() {
		if _, ok := in.Public[name]; ok {
			t.Fatalf("secret field %q of %s is in Public", name, in.Kind.Name)
		}
	}
	for name, s := range in.Secrets {
		f, ok := in.Kind.Field(name)
		if !ok || !f.Secret {
			t.Fatalf("Secrets holds %q, not a secret field of %s", name, in.Kind.Name)
		}
		if s.Keep == !s.Value.IsZero() {
			t.Fatalf("secret %q: keep=%v with a value set=%v", name, s.Keep, !s.Value.IsZero())
		}
	}
	for _, f := range in.Kind.Fields {
		if f.Required {
			_, pub := in.Public[f.Name]
			_, sec := in.Secrets[f.Name]
			if !pub && !sec {
				t.Fatalf("required field %q missing after a successful Parse", f.Name)
			}
		}
	}
	// Public fields must survive a JSON round trip, as the store keeps them as JSON.
	if _, err := json.Marshal(in.Public); err != nil {
		t.Fatalf("public fields do not marshal: %v", err)
	}
}

// secretNames are the secret fields of every kind. No kind has a public field of one of
// these names, so a string under fields.<name> is a secret value whatever the type.
func secretNames() map[string]bool {
	out := map[string]bool{}
	for _, typ := range credential.Types() {
		k, _ := credential.Lookup(typ)
		for _, name := range k.SecretFields() {
			out[name] = true
		}
	}
	return out
}

// secretSpans finds, as far as body is valid JSON, the byte ranges of the JSON strings
// that Parse treats as secret values: a string directly under fields.<secret field>
// (non-empty and not too long, so that replacing it changes nothing but the value) and
// any string nested deeper there (never valid, whatever its content). It also returns
// the decoded direct values.
func secretSpans(body []byte) (spans [][2]int, values []string) {
	w := &spanWalker{dec: json.NewDecoder(bytes.NewReader(body)), body: body, secret: secretNames()}
	w.dec.UseNumber()
	_ = w.value(levelTop)
	return w.spans, w.values
}

type level int

const (
	levelTop    level = iota // the body
	levelFields              // the value of the top-level "fields" key
	levelSecret              // the value of a secret field
	levelNested              // inside a secret field's value
	levelOther               // anything else
)

type spanWalker struct {
	dec    *json.Decoder
	body   []byte
	secret map[string]bool
	spans  [][2]int
	values []string
}

// start returns where the next token begins: the decoder consumes ':' and ',' lazily.
func (w *spanWalker) start() int {
	i := int(w.dec.InputOffset())
	for i < len(w.body) && strings.IndexByte(" \t\r\n:,", w.body[i]) >= 0 {
		i++
	}
	return i
}

func (w *spanWalker) value(lv level) error {
	begin := w.start()
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	switch tok := tok.(type) {
	case string:
		end := int(w.dec.InputOffset())
		if begin >= end || w.body[begin] != '"' || w.body[end-1] != '"' {
			return nil // not where we thought; leave it alone
		}
		switch {
		case lv == levelSecret && tok != "" && len(tok) <= 64<<10:
			w.spans = append(w.spans, [2]int{begin, end})
			w.values = append(w.values, tok)
		case lv == levelNested:
			w.spans = append(w.spans, [2]int{begin, end})
		}
	case json.Delim:
		child := func(key string) level {
			switch {
			case lv == levelTop && strings.EqualFold(key, "fields"):
				return levelFields
			case lv == levelFields && w.secret[key]:
				return levelSecret
			case lv == levelSecret || lv == levelNested:
				return levelNested
			}
			return levelOther
		}
		for w.dec.More() {
			key := ""
			if tok == '{' {
				k, err := w.dec.Token()
				if err != nil {
					return err
				}
				key, _ = k.(string)
			}
			if err := w.value(child(key)); err != nil {
				return err
			}
		}
		if _, err := w.dec.Token(); err != nil {
			return err
		}
	}
	return nil
}

func replaceSpans(body []byte, spans [][2]int, with []byte) []byte {
	var out []byte
	last := 0
	for _, s := range spans {
		out = append(out, body[last:s[0]]...)
		out = append(out, with...)
		last = s[1]
	}
	return append(out, body[last:]...)
}
