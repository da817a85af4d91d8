package credential

import (
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"strings"

	"github.com/sesamehq/sesame"
)

// Material is a credential opened for use: public fields and plaintext secrets. It must
// never reach a response, log or error.
type Material struct {
	Workspace string
	Key       string
	Type      string
	Public    map[string]any
	Secrets   map[string]sesame.Secret
	// Dial, when not nil, makes every network connection an injector opens on this
	// credential's behalf (an OAuth2 or JWT-bearer token endpoint): it is the on-premise
	// agent of the connection the credential is injected for, so a private token endpoint
	// is reached through the same agent as the API. It replaces the injector's own address
	// check; what it reaches is bounded by the agent's allowlist. Nil: the injector dials
	// directly, with its own rules.
	Dial DialFunc
}

// DialFunc opens a network connection to addr ("host:port").
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Target says where a credential goes when the kind lets the caller choose: a header or
// query parameter name. Zero means the kind's own default.
type Target struct {
	In   string // "header" or "query"
	Name string
}

// InjectFunc adds a credential to an outbound request.
type InjectFunc func(req *http.Request, m Material, t Target) error

// Inject adds the credential to req as its kind prescribes. Kinds whose material must be
// fetched or signed at call time (oauth2, jwt_bearer) have no static injector; the caller
// plugs in its own for them.
func Inject(req *http.Request, m Material, t Target) error {
	k, ok := Lookup(m.Type)
	if !ok || k.Inject == nil {
		return sesame.Errorf(sesame.CodeInvalidArgument, "credential %q of type %s cannot be injected here", m.Key, m.Type)
	}
	return k.Inject(req, m, t)
}

// setHeader sets a header after refusing values that could split it.
func setHeader(req *http.Request, name, value string) error {
	if strings.ContainsAny(value, "\r\n\x00") {
		return sesame.Errorf(sesame.CodeInvalidField, "credential value for header %q contains CR, LF or NUL", name)
	}
	req.Header.Set(name, value)
	return nil
}

// place puts value in the header or query parameter named by t.
func place(req *http.Request, t Target, value string) error {
	if t.Name == "" {
		return sesame.Errorf(sesame.CodeInvalidArgument, "no header or query name for the credential")
	}
	switch t.In {
	case "query":
		q := req.URL.Query()
		q.Set(t.Name, value)
		req.URL.RawQuery = q.Encode()
		return nil
	case "header", "":
		return setHeader(req, t.Name, value)
	}
	return sesame.Errorf(sesame.CodeInvalidArgument, "credential location %q is not header or query", t.In)
}

func injectBasic(req *http.Request, m Material, _ Target) error {
	user, _ := m.Public["username"].(string)
	pass := m.Secrets["password"].Reveal()
	buf := make([]byte, 0, len(user)+1+len(pass))
	buf = append(append(append(buf, user...), ':'), pass...)
	v := "Basic " + base64.StdEncoding.EncodeToString(buf)
	clear(buf)
	return setHeader(req, "Authorization", v)
}

func injectBearer(req *http.Request, m Material, _ Target) error {
	scheme, _ := m.Public["scheme"].(string)
	if scheme == "" {
		scheme = "Bearer"
	}
	return setHeader(req, "Authorization", scheme+" "+string(m.Secrets["token"].Reveal()))
}

func injectAPIKey(req *http.Request, m Material, t Target) error {
	if t.Name == "" {
		t.Name, _ = m.Public["name"].(string)
		t.In, _ = m.Public["in"].(string)
	}
	return place(req, t, string(m.Secrets["value"].Reveal()))
}

func injectSecret(req *http.Request, m Material, t Target) error {
	if t.Name == "" {
		return sesame.Errorf(sesame.CodeInvalidArgument,
			"credential %q is a plain secret: say where it goes (the connection's auth.name and auth.in, or a function parameter)", m.Key)
	}
	return place(req, t, string(m.Secrets["value"].Reveal()))
}
