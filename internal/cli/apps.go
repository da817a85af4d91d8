package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/apps"
)

const appUsage = `usage:
  sesame app keygen [--out dev.key] [--force]      make a developer key pair: writes the private key
                                                   (PKCS#8 PEM, mode 0600), prints the public key
  sesame app cert --dev-pubkey KEY --domains "com.acme.*[,…]" [--expires RFC3339] [--out cert.json]
                                                   issue a developer certificate (server, manage_apps)
  sesame app certs                                 list developer certificates
  sesame app revoke-cert ID                        revoke a certificate and every token issued under it
  sesame app sign --cert cert.json --key dev.key [--out FILE] manifest.json
                                                   write the signature property into the manifest (local)
  sesame app tokens [--app APP_ID]                 list unexpired signed app tokens (trial tokens have no record)
  sesame app revoke-token ID | --app APP_ID        revoke one signed token, or every token of an app (trial too)`

func appCommand(ctx context.Context, c *client, args []string) error {
	if len(args) == 0 {
		return usagef(appUsage)
	}
	// keygen and sign run locally: they take no server flags, and sign's --key is the
	// developer key file, not the API key.
	var fs *flag.FlagSet
	switch args[0] {
	case "keygen", "sign":
		fs = flag.NewFlagSet("sesame app "+args[0], flag.ContinueOnError)
		fs.SetOutput(c.env.Stderr)
		fs.BoolVar(&c.json, "json", false, "print JSON")
	default:
		fs = c.flags("app " + args[0])
	}
	out := fs.String("out", "", "keygen, cert, sign: the file to write")
	force := fs.Bool("force", false, "keygen: overwrite an existing key file")
	devPubkey := fs.String("dev-pubkey", "", "cert: the developer's public key (base64, from sesame app keygen)")
	domains := fs.String("domains", "", "cert: comma-separated app IDs or app ID prefixes ending in .* that the certificate may sign")
	expires := fs.String("expires", "", "cert: expiry time (RFC 3339); default: none")
	certFile := fs.String("cert", "", "sign: the developer certificate file")
	var keyFile *string
	if args[0] == "sign" {
		keyFile = fs.String("key", "", "sign: the developer private key file")
	}
	app := fs.String("app", "", "tokens, revoke-token: the app ID")
	pos, err := c.parse(fs, args[1:])
	if err != nil {
		return err
	}
	need := func(n int) error {
		if len(pos) != n {
			return usagef(appUsage)
		}
		return nil
	}
	switch args[0] {
	case "keygen":
		if err := need(0); err != nil {
			return err
		}
		return appKeygen(c, *out, *force)
	case "cert":
		if err := need(0); err != nil {
			return err
		}
		return appCert(ctx, c, *devPubkey, *domains, *expires, *out)
	case "certs":
		if err := need(0); err != nil {
			return err
		}
		return appCerts(ctx, c)
	case "revoke-cert":
		if err := need(1); err != nil {
			return err
		}
		var res struct {
			RevokedTokens int `json:"revoked_tokens"`
		}
		if err := c.do(ctx, http.MethodDelete, "/v1/apps/certs/"+url.PathEscape(pos[0]), nil, nil, &res); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(res)
		}
		_, err := fmt.Fprintf(c.env.Stdout, "revoked certificate %s and %d token(s) issued under it\n", pos[0], res.RevokedTokens)
		return err
	case "sign":
		if err := need(1); err != nil {
			return err
		}
		return appSign(c, *certFile, *keyFile, pos[0], *out)
	case "tokens":
		if err := need(0); err != nil {
			return err
		}
		return appTokens(ctx, c, *app)
	case "revoke-token":
		switch {
		case *app != "" && len(pos) == 0:
			var res struct {
				RevokedTokens int `json:"revoked_tokens"`
			}
			if err := c.do(ctx, http.MethodDelete, "/v1/apps/tokens", url.Values{"app": {*app}}, nil, &res); err != nil {
				return err
			}
			if c.json {
				return c.printJSON(res)
			}
			_, err := fmt.Fprintf(c.env.Stdout, "revoked every token of %s issued until now (%d recorded; trial tokens have no record)\n", *app, res.RevokedTokens)
			return err
		case *app == "" && len(pos) == 1:
			if err := c.do(ctx, http.MethodDelete, "/v1/apps/tokens/"+url.PathEscape(pos[0]), nil, nil, nil); err != nil {
				return err
			}
			_, err := fmt.Fprintf(c.env.Stdout, "revoked token %s\n", pos[0])
			return err
		}
		return usagef(appUsage)
	}
	return usagef(appUsage)
}

// appKeygen writes a new Ed25519 private key as PKCS#8 PEM (mode 0600) and prints the
// public key. It never prints the private key.
func appKeygen(c *client, out string, force bool) error {
	if out == "" {
		out = "dev.key"
	}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	block := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	defer clear(block)
	defer clear(der)
	defer clear(priv)
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(out, flags, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists; pass --force to overwrite it (the key in it would be lost)", out)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(block); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(out, 0o600); err != nil { // O_TRUNC keeps an existing file's mode
		return err
	}
	pk := apps.EncodePublicKey(pub)
	if c.json {
		return c.printJSON(map[string]string{"dev_pubkey": pk, "key_file": out})
	}
	fmt.Fprintf(c.env.Stderr, "wrote the private key to %s (mode 0600): keep it secret. The public key, for sesame app cert --dev-pubkey:\n", out)
	_, err = fmt.Fprintln(c.env.Stdout, pk)
	return err
}

func appCert(ctx context.Context, c *client, devPubkey, domains, expires, out string) error {
	if devPubkey == "" || domains == "" {
		return usagef("sesame app cert needs --dev-pubkey and --domains\n%s", appUsage)
	}
	req := apps.CertRequest{DevPubkey: strings.TrimSpace(devPubkey)}
	for _, d := range strings.Split(domains, ",") {
		if d = strings.TrimSpace(d); d != "" {
			req.Domains = append(req.Domains, d)
		}
	}
	if expires != "" {
		t, err := time.Parse(time.RFC3339, expires)
		if err != nil {
			return usagef("--expires must be an RFC 3339 time such as 2027-01-01T00:00:00Z")
		}
		req.ExpiresAt = &t
	}
	var view apps.CertView
	if err := c.do(ctx, http.MethodPost, "/v1/apps/certs", nil, req, &view); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(view)
	}
	var doc bytes.Buffer
	if err := json.Indent(&doc, view.Certificate, "", "  "); err != nil {
		return err
	}
	doc.WriteByte('\n')
	if out != "" {
		if err := writeFileAtomic(out, doc.Bytes(), 0o644); err != nil {
			return err
		}
		_, err := fmt.Fprintf(c.env.Stdout, "issued certificate %s for %s; wrote it to %s\n", view.ID, strings.Join(view.Domains, ", "), out)
		return err
	}
	_, err := c.env.Stdout.Write(doc.Bytes())
	return err
}

func appCerts(ctx context.Context, c *client) error {
	items, err := listAll[apps.CertView](ctx, c, "/v1/apps/certs")
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(items)
	}
	rows := make([][]string, len(items))
	for i, v := range items {
		rows[i] = []string{v.ID, strings.Join(v.Domains, ","), fmtTime(v.IssuedAt), fmtPtr(v.ExpiresAt), fmtPtr(v.RevokedAt)}
	}
	return c.table([]string{"ID", "DOMAINS", "ISSUED", "EXPIRES", "REVOKED"}, rows)
}

func appTokens(ctx context.Context, c *client, app string) error {
	filter := url.Values{}
	if app != "" {
		filter.Set("app", app)
	}
	all, err := listWhere[sesame.AppToken](ctx, c, "/v1/apps/tokens", filter)
	if err != nil {
		return err
	}
	if c.json {
		if all == nil {
			all = []sesame.AppToken{}
		}
		return c.printJSON(all)
	}
	rows := make([][]string, len(all))
	for i, t := range all {
		rows[i] = []string{t.ID, t.AppID, t.Version, t.Mode, fmtTime(t.IssuedAt), fmtTime(t.ExpiresAt), fmtPtr(t.RevokedAt)}
	}
	return c.table([]string{"ID", "APP", "VERSION", "MODE", "ISSUED", "EXPIRES", "REVOKED"}, rows)
}

// appSign signs a manifest file with a developer key and certificate, locally, and writes
// the signature property into it (or into out). Other properties and their order stay.
func appSign(c *client, certFile, keyFile, manifestFile, out string) error {
	if certFile == "" || keyFile == "" {
		return usagef("sesame app sign needs --cert and --key\n%s", appUsage)
	}
	certJSON, err := readCertificate(certFile)
	if err != nil {
		return err
	}
	key, err := readPrivateKey(keyFile)
	if err != nil {
		return err
	}
	defer clear(key)
	src, err := os.ReadFile(manifestFile)
	if err != nil {
		return err
	}
	m, err := apps.ParseManifest(src)
	if err != nil {
		var se *sesame.Error
		if errors.As(err, &se) {
			return fmt.Errorf("%s: %s", manifestFile, se.Message)
		}
		return err
	}
	sig, err := apps.SignManifest(m, certJSON, key)
	if err != nil {
		return fmt.Errorf("cannot sign %s: %w", manifestFile, err)
	}
	signed, err := setProperty(src, "signature", sig)
	if err != nil {
		return fmt.Errorf("%s: %w", manifestFile, err)
	}
	if out == "" {
		out = manifestFile
	}
	mode := os.FileMode(0o644)
	if st, err := os.Stat(manifestFile); err == nil {
		mode = st.Mode().Perm()
	}
	if err := writeFileAtomic(out, signed, mode); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.env.Stdout, "signed %s %s (%s) under certificate; wrote %s\n", m.AppID, m.Version, m.DisplayName, out)
	return err
}

// readCertificate reads a certificate file: the document sesame app cert prints, or the
// API's view of it (with the document under "certificate").
func readCertificate(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var view struct {
		Certificate json.RawMessage `json:"certificate"`
	}
	if json.Unmarshal(b, &view) == nil && len(view.Certificate) > 0 {
		b = view.Certificate
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		return nil, fmt.Errorf("%s is not a certificate (JSON): %v", path, err)
	}
	if _, err := apps.ParseCertificate(compact.Bytes()); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return compact.Bytes(), nil
}

// readPrivateKey reads an Ed25519 private key in PKCS#8 PEM, as sesame app keygen writes.
func readPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s is not a PEM private key (make one with sesame app keygen)", path)
	}
	defer clear(block.Bytes)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: not a PKCS#8 private key", path)
	}
	ed, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s holds a %T, not an Ed25519 key", path, k)
	}
	return ed, nil
}

// setProperty returns the JSON object src with property name set to value, keeping the
// other properties in their order, indented with two spaces.
func setProperty(src []byte, name, value string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	type prop struct {
		key string
		val json.RawMessage
	}
	var props []prop
	set := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, err
		}
		if key == name {
			if set {
				continue // a duplicate: keep one
			}
			val, _ = json.Marshal(value)
			set = true
		}
		props = append(props, prop{key, val})
	}
	if !set {
		val, _ := json.Marshal(value)
		props = append(props, prop{name, val})
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, p := range props {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(p.key)
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(p.val)
	}
	buf.WriteByte('}')
	var out bytes.Buffer
	if err := json.Indent(&out, buf.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// writeFileAtomic writes data to path through a temporary file in the same folder, so a
// failure leaves the old file as it was.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, bytes.NewReader(data)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
