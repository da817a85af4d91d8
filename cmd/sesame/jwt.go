package main

import (
	"fmt"
	"log/slog"
	"strconv"

	"github.com/sesamehq/sesame/internal/crypt"
	"github.com/sesamehq/sesame/internal/jwtbearer/jwtinject"
)

// newJWTInjector returns the injector for jwt_bearer credentials. Their token_url
// exchange refuses loopback, private and link-local addresses unless
// SESAME_ALLOW_PRIVATE_TOKEN_URLS is true: for tests and development against a local
// token endpoint, never for production.
func newJWTInjector(getenv func(string) string, kr *crypt.Keyring, log *slog.Logger) (*jwtinject.Injector, error) {
	allowPrivate := false
	if v := getenv("SESAME_ALLOW_PRIVATE_TOKEN_URLS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("SESAME_ALLOW_PRIVATE_TOKEN_URLS must be true or false, not %q", v)
		}
		allowPrivate = b
	}
	if allowPrivate {
		log.Warn("jwt_bearer token_url may reach loopback and private addresses (SESAME_ALLOW_PRIVATE_TOKEN_URLS)")
	}
	return jwtinject.New(jwtinject.Options{Sealer: kr, AllowPrivate: allowPrivate, Logger: log}), nil
}
