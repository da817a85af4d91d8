package cli

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

const loginUsage = `usage: sesame login [--server URL] [--no-browser]
       sesame logout [--server URL]

login signs you in through the server's identity provider (OIDC): it opens your browser
(or prints the URL to open, with --no-browser or without a display), waits for the browser
to come back to a listener on 127.0.0.1, and stores a short-lived session token in
<config dir>/sesame/session (mode 0600). Client commands use it when neither --key nor
SESAME_KEY is given, and only for the server it was made for.
logout ends the session on the server and deletes the file.`

// savedSession is the file `sesame login` writes.
type savedSession struct {
	Server    string    `json:"server"`
	Token     string    `json:"token"`
	User      string    `json:"user"`
	ExpiresAt time.Time `json:"expires_at"`
}

// sessionFile is <config dir>/sesame/session: $XDG_CONFIG_HOME, else $HOME/.config on
// Unix, else os.UserConfigDir.
func sessionFile(env Env) (string, error) {
	dir := env.Getenv("XDG_CONFIG_HOME")
	if dir == "" && runtime.GOOS != "windows" && runtime.GOOS != "darwin" && env.Getenv("HOME") != "" {
		dir = filepath.Join(env.Getenv("HOME"), ".config")
	}
	if dir == "" {
		var err error
		if dir, err = os.UserConfigDir(); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, "sesame", "session"), nil
}

// loadSession returns the saved session token for server, if there is one.
func loadSession(env Env, server string) (string, bool) {
	file, err := sessionFile(env)
	if err != nil {
		return "", false
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", false
	}
	var s savedSession
	if json.Unmarshal(b, &s) != nil || s.Token == "" || strings.TrimRight(s.Server, "/") != strings.TrimRight(server, "/") || !time.Now().Before(s.ExpiresAt) {
		return "", false
	}
	return s.Token, true
}

func randomURLString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// serverFlags is a flag set with --server only (login and logout take no key).
func (c *client) serverFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("sesame "+name, flag.ContinueOnError)
	fs.SetOutput(c.env.Stderr)
	fs.Usage = func() {}
	fs.StringVar(&c.server, "server", "", "server URL (default: from SESAME_SERVER, else "+defaultServer+")")
	return fs
}

// Login runs `sesame login` (args after "login").
func Login(ctx context.Context, args []string, env Env) error {
	c := &client{env: env, usage: loginUsage}
	fs := c.serverFlags("login")
	noBrowser := fs.Bool("no-browser", false, "print the URL to open instead of opening a browser")
	if _, err := c.parse(fs, args); err != nil {
		return err
	}
	server, err := c.serverURL()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	verifier := randomURLString(32)
	sum := sha256.Sum256([]byte(verifier))
	ret := "http://" + ln.Addr().String() + "/sesame-login"
	start := server + "/console/oidc/start?" + url.Values{"cli": {ret}, "cli_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}}.Encode()

	codes := make(chan string, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := r.URL.Query().Get("code")
		if r.URL.Path != "/sesame-login" || code == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "Signed in to Sesame. You can close this tab and return to the terminal.")
		select {
		case codes <- code:
		default:
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	fmt.Fprintf(env.Stderr, "Open this URL in a browser to sign in:\n%s\n", start)
	if !*noBrowser && (env.Getenv("DISPLAY") != "" || env.Getenv("WAYLAND_DISPLAY") != "" || runtime.GOOS == "darwin" || runtime.GOOS == "windows") {
		if err := openBrowser(start); err != nil {
			fmt.Fprintf(env.Stderr, "(could not open a browser: %v)\n", err)
		}
	}
	var code string
	wait, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	select {
	case code = <-codes:
	case <-wait.Done():
		return fmt.Errorf("no sign-in came back within 10 minutes")
	}
	req, err := http.NewRequestWithContext(ctx, "POST", server+"/console/oidc/cli/token",
		strings.NewReader(url.Values{"code": {code}, "verifier": {verifier}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var s savedSession
	if err := c.exchange(&http.Client{Timeout: time.Minute}, req, 1<<20, &s); err != nil {
		return err
	}
	s.Server = server
	file, err := sessionFile(env)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(s)
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o600); err != nil { // an old file may have had wider permissions
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "signed in as %s until %s\n", s.User, s.ExpiresAt.UTC().Format(time.RFC3339))
	return nil
}

// Logout runs `sesame logout`: the server ends the session, then the file goes.
func Logout(ctx context.Context, args []string, env Env) error {
	c := &client{env: env, usage: loginUsage}
	fs := c.serverFlags("logout")
	if _, err := c.parse(fs, args); err != nil {
		return err
	}
	server, err := c.serverURL()
	if err != nil {
		return err
	}
	file, err := sessionFile(env)
	if err != nil {
		return err
	}
	token, ok := loadSession(env, server)
	if ok {
		req, err := http.NewRequestWithContext(ctx, "POST", server+"/console/oidc/cli/logout", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if err := c.exchange(&http.Client{Timeout: time.Minute}, req, 1<<20, nil); err != nil {
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
				return err // the file stays, so that logout can be tried again
			}
		}
	}
	if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	fmt.Fprintln(env.Stdout, "signed out")
	return nil
}

func openBrowser(u string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		cmd = exec.Command("xdg-open", u)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
