package gateway

import (
	"context"
	"errors"
	"net"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/outbound"
)

// outboundError maps an outbound client error to a client error. The upstream's own words
// never pass through unfiltered: only the kind of failure is told.
func outboundError(err error) error {
	var rl *outbound.RateLimitedError
	var ne net.Error
	switch {
	case errors.As(err, &rl):
		return &sesame.Error{Code: sesame.CodeRateLimited, Message: "the connection's rate limit is exhausted; retry later", RetryAfter: rl.RetryAfter, Limiter: "connection"}
	case errors.Is(err, outbound.ErrForbiddenAddress):
		return sesame.Errorf(sesame.CodeForbiddenAddress, "the upstream address is loopback, private, link-local or a metadata address; the connection must set allow_private_networks to reach it")
	case errors.Is(err, context.Canceled):
		return sesame.Errorf(sesame.CodeUpstreamError, "the call was canceled")
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return sesame.Errorf(sesame.CodeUpstreamTimeout, "the upstream did not answer in time")
	}
	var se *sesame.Error
	if errors.As(err, &se) {
		return err
	}
	return sesame.Errorf(sesame.CodeUpstreamError, "the upstream could not be reached")
}
