package vault_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/jwtbearer/jwttest"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/vault"
)

// TestMovedCiphertextDoesNotDecrypt edits the database file directly: a sealed value
// copied to another credential, another field or another workspace must not open there.
func TestMovedCiphertextDoesNotDecrypt(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	st, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v := newVault(t, st, newKey(t))
	putSecret(t, v, "a", "secret-a")
	putSecret(t, v, "b", "secret-b")
	// Saving a jwt_bearer credential checks its key, so it must be a real PKCS#12.
	p12 := jwttest.PKCS12(t, jwttest.KeyFor(t, "ES256"), "pw")
	if _, _, err := v.PutCredential(ctx, "default", "jwt", []byte(`{"type":"jwt_bearer","fields":{"alg":"ES256","pkcs12":"`+p12+`","pkcs12_password":"pw"}}`), vault.Actor{Admin: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.CreateWorkspace(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	putSecret(t, v, "c", "secret-c")
	if _, _, err := v.PutCredential(ctx, "other", "a", []byte(`{"type":"secret","fields":{"value":"other-a"}}`), vault.Actor{Admin: true}); err != nil {
		t.Fatal(err)
	}

	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	move := func(t *testing.T, fromWS, fromKey, fromField, toWS, toKey, toField string) {
		t.Helper()
		res, err := raw.Exec(`UPDATE credential_secrets SET blob = (SELECT blob FROM credential_secrets WHERE workspace = $1 AND cred_key = $2 AND field = $3)
			WHERE workspace = $4 AND cred_key = $5 AND field = $6`, fromWS, fromKey, fromField, toWS, toKey, toField)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("moved %d rows", n)
		}
	}
	cases := []struct {
		name                     string
		fromWS, fromKey, fromFld string
		toWS, toKey, toFld       string
	}{
		{"another credential", "default", "a", "value", "default", "b", "value"},
		{"another field", "default", "jwt", "pkcs12_password", "default", "jwt", "pkcs12"},
		{"another workspace", "default", "c", "value", "other", "a", "value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			move(t, c.fromWS, c.fromKey, c.fromFld, c.toWS, c.toKey, c.toFld)
			_, err := v.Resolve(ctx, c.toWS, c.toKey)
			if !errors.Is(err, crypt.ErrDecrypt) {
				t.Fatalf("Resolve after moving a ciphertext = %v, want ErrDecrypt", err)
			}
		})
	}
	// The source records still open: nothing else was disturbed.
	if r, err := v.Resolve(ctx, "default", "a"); err != nil || string(r.Secrets["value"].Reveal()) != "secret-a" {
		t.Fatalf("source record: %v", err)
	}
}
