package main

import (
	"flag"
	"fmt"
	"strconv"
	"time"
)

// limitFlags bound what callers, above all unauthenticated ones, can make the server hold:
// connections, goroutines and file descriptors (PRODUCT.md §4.9: availability under abuse).
type limitFlags struct {
	readHeaderTimeout time.Duration
	anonBodyTimeout   time.Duration
	idleTimeout       time.Duration
	maxAnonymous      int
	trialPerMinute    int
}

func (l *limitFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.DurationVar(&l.readHeaderTimeout, "read-header-timeout", envDuration(getenv, "SESAME_READ_HEADER_TIMEOUT", 5*time.Second),
		"time a client has to send a request's headers (SESAME_READ_HEADER_TIMEOUT)")
	fs.DurationVar(&l.anonBodyTimeout, "anonymous-body-timeout", envDuration(getenv, "SESAME_ANONYMOUS_BODY_TIMEOUT", 10*time.Second),
		"time a request has to send its whole body, counted from its headers, unless it authenticates with a key or app token; a trickling client cannot extend it (SESAME_ANONYMOUS_BODY_TIMEOUT)")
	fs.DurationVar(&l.idleTimeout, "idle-timeout", envDuration(getenv, "SESAME_IDLE_TIMEOUT", time.Minute),
		"how long an idle keep-alive connection stays open (SESAME_IDLE_TIMEOUT)")
	fs.IntVar(&l.maxAnonymous, "max-anonymous-requests", envInt(getenv, "SESAME_MAX_ANONYMOUS_REQUESTS", 256),
		"unauthenticated requests (app manifests, anonymous function calls, OAuth2 callbacks) served at once; more get 503 with Retry-After (SESAME_MAX_ANONYMOUS_REQUESTS)")
	fs.IntVar(&l.trialPerMinute, "trial-tokens-per-minute", envInt(getenv, "SESAME_TRIAL_TOKENS_PER_MINUTE", 30),
		"trial app tokens issued per source address per minute; more get 429 with Retry-After (SESAME_TRIAL_TOKENS_PER_MINUTE)")
}

func (l *limitFlags) check() error {
	for name, d := range map[string]time.Duration{"--read-header-timeout": l.readHeaderTimeout, "--anonymous-body-timeout": l.anonBodyTimeout, "--idle-timeout": l.idleTimeout} {
		if d <= 0 {
			return fmt.Errorf("%s must be positive, not %s", name, d)
		}
	}
	if l.maxAnonymous < 1 {
		return fmt.Errorf("--max-anonymous-requests must be at least 1, not %d", l.maxAnonymous)
	}
	if l.trialPerMinute < 1 {
		return fmt.Errorf("--trial-tokens-per-minute must be at least 1 (turn trial apps off with --no-trial-apps), not %d", l.trialPerMinute)
	}
	return nil
}

// envInt reads an integer from the environment, or def when it is unset or invalid.
func envInt(getenv func(string) string, name string, def int) int {
	if n, err := strconv.Atoi(getenv(name)); err == nil {
		return n
	}
	return def
}
