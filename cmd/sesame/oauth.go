package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/oauth"
	"github.com/sesamehq/sesame/internal/outbound"
	"github.com/sesamehq/sesame/internal/store"
	"github.com/sesamehq/sesame/internal/vault"
)

// oauthFlags are the serve flags of the OAuth2 service.
type oauthFlags struct {
	publicURL     string
	returnURLs    string
	refreshMargin time.Duration
	leaseWait     time.Duration
}

// newOAuth builds the OAuth2 service. addr is the address the server listens on, the
// public URL when --public-url is not given. SESAME_ALLOW_PRIVATE_TOKEN_URLS=true lets
// token and revocation endpoints be on loopback or private addresses: for tests and
// development only, as it opens the server to SSRF through a credential's token_url.
func newOAuth(f oauthFlags, getenv func(string) string, v *vault.Vault, st *store.Store, kr *crypt.Keyring, addr string, log *slog.Logger) (*oauth.Manager, error) {
	if v := getenv("SESAME_OAUTH_REFRESH_MARGIN"); v != "" {
		if _, err := time.ParseDuration(v); err != nil {
			return nil, fmt.Errorf("SESAME_OAUTH_REFRESH_MARGIN: %w", err)
		}
	}
	if f.refreshMargin < 0 {
		return nil, fmt.Errorf("--oauth-refresh-margin must not be negative")
	}
	if f.leaseWait < 0 {
		return nil, fmt.Errorf("--oauth-lease-wait must not be negative")
	}
	public := strings.TrimRight(f.publicURL, "/")
	if public == "" {
		public = "http://" + addr
	} else if u, err := url.Parse(public); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("--public-url must be an absolute http(s) URL without query or user info")
	}
	var returns []string
	for _, r := range strings.Split(f.returnURLs, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		if u, err := url.Parse(r); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--oauth-return-urls: %q is not an absolute http(s) URL", r)
		}
		returns = append(returns, r)
	}
	allowPrivate := getenv("SESAME_ALLOW_PRIVATE_TOKEN_URLS") == "true"
	if allowPrivate {
		log.Warn("SESAME_ALLOW_PRIVATE_TOKEN_URLS is set: OAuth2 token endpoints may be on private addresses (tests and development only)")
	}
	return oauth.New(oauth.Config{
		Store: st, Vault: v, Keyring: kr, Secrets: v, SyncKeys: v.SyncKeys,
		Transport: outbound.NewTransport(allowPrivate),
		PublicURL: public, ReturnURLs: returns,
		Clock: time.Now, Logger: log.With("component", "oauth"),
		RefreshMargin: f.refreshMargin,
		LeaseWait:     f.leaseWait,
	}), nil
}
