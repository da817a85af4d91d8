package gateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/function"
)

// FunctionView is a stored function as the API shows it.
type FunctionView struct {
	Workspace string `json:"workspace"`
	*function.Function
	Source    string    `json:"source"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type cachedFunc struct {
	version int64
	body    string // the stored source it was parsed from
	fn      *function.Function
}

// functionRefs checks every credential a function names and returns their keys: the
// auth parameters, and any parameter whose default names a stored api_key or secret.
// Each must exist and may be sent to base.
func (g *Gateway) functionRefs(ctx context.Context, ws string, f *function.Function, base string) ([]string, error) {
	var refs []string
	names := make([]string, 0, len(f.Parameters))
	for name := range f.Parameters {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := f.Parameters[name]
		field := "parameters." + name + ".value"
		if function.IsAuth(name, p) {
			if _, err := g.checkCredential(ctx, ws, *p.Value, base, field, nil); err != nil {
				if f.PlatformToken(name) && sesame.ErrorCode(err) == sesame.CodeInvalidField {
					if _, gerr := g.cfg.Store.GetCredential(ctx, ws, *p.Value); errors.Is(gerr, sesame.ErrNotFound) {
						return nil, sesame.Errorf(sesame.CodeInvalidField,
							"parameters.%s.type: jigx is the Jigx platform's own token, which Sesame does not have: create a credential named %q in workspace %q (a bearer credential holding a Jigx personal access token) to run this function",
							name, *p.Value, ws)
					}
				}
				return nil, err
			}
			refs = append(refs, *p.Value)
			continue
		}
		if key, ok := g.namedSecret(ctx, ws, p); ok {
			if _, err := g.checkCredential(ctx, ws, key, base, field, nil); err != nil {
				return nil, err
			}
			refs = append(refs, key)
		}
	}
	// A credential that several parameters use is one reference (the store keeps a set).
	slices.Sort(refs)
	return slices.Compact(refs), nil
}

// namedSecret reports whether a non-auth parameter's default value names a stored
// api_key, secret or bearer credential, which then stands in for the value.
func (g *Gateway) namedSecret(ctx context.Context, ws string, p function.Param) (string, bool) {
	if p.Value == nil || !sesame.ValidCredentialKey(*p.Value) {
		return "", false
	}
	rec, err := g.cfg.Store.GetCredential(ctx, ws, *p.Value)
	if err != nil || (rec.Type != "api_key" && rec.Type != "secret" && rec.Type != "bearer") {
		return "", false
	}
	return *p.Value, true
}

// target returns the base URI a function calls and, if any, its connection.
// A Jigx function's url is served by the connection with its origin (connectionFor); the
// base is then the url's origin, and the connection's name is returned too.
func (g *Gateway) target(ctx context.Context, ws string, f *function.Function) (base string, conn *Connection, o sesame.Object, connName string, err error) {
	connName, err = g.connectionName(ctx, ws, f)
	if err != nil {
		return "", nil, sesame.Object{}, "", err
	}
	if connName == "" {
		return f.BaseURL(), nil, sesame.Object{}, "", nil
	}
	c, o, err := g.loadConnection(ctx, ws, connName)
	if sesame.ErrorCode(err) == sesame.CodeNotFound {
		return "", nil, o, "", sesame.Errorf(sesame.CodeInvalidField, "connection: connection %q does not exist in workspace %q", connName, ws)
	}
	if err != nil {
		return "", nil, o, "", err
	}
	if f.Connection == "" {
		return f.BaseURL(), &c, o, connName, nil
	}
	return c.BaseURI, &c, o, connName, nil
}

// PutFunction creates or replaces a function from its YAML (or JSON) definition.
func (g *Gateway) PutFunction(ctx context.Context, ws, name string, src []byte) (FunctionView, bool, error) {
	if err := checkWorkspace(ws); err != nil {
		return FunctionView{}, false, err
	}
	if err := checkName("function", name); err != nil {
		return FunctionView{}, false, err
	}
	f, err := function.Parse(name, src)
	if err != nil {
		return FunctionView{}, false, err
	}
	base, _, _, _, err := g.target(ctx, ws, f)
	if err != nil {
		return FunctionView{}, false, err
	}
	refs, err := g.functionRefs(ctx, ws, f, base)
	if err != nil {
		return FunctionView{}, false, err
	}
	old, err := g.cfg.Store.GetObject(ctx, ws, KindFunction, name)
	exists := err == nil
	if err != nil && !errors.Is(err, sesame.ErrNotFound) {
		return FunctionView{}, false, err
	}
	now := g.cfg.Clock.Now().UTC()
	o := sesame.Object{Workspace: ws, Kind: KindFunction, Name: name, Body: src, Refs: refs, CreatedAt: now, UpdatedAt: now}
	if exists {
		o.CreatedAt = old.CreatedAt
	}
	if o.Version, err = g.cfg.Store.PutObject(ctx, o, old.Version); err != nil {
		return FunctionView{}, false, err
	}
	g.forget(objectKey(ws, KindFunction, name))
	return FunctionView{Workspace: ws, Function: f, Source: string(src), Version: o.Version, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}, !exists, nil
}

// loadFunction returns a stored function, parsed once per version.
func (g *Gateway) loadFunction(ctx context.Context, ws, name string) (*function.Function, sesame.Object, error) {
	if err := checkWorkspace(ws); err != nil {
		return nil, sesame.Object{}, err
	}
	if err := checkName("function", name); err != nil {
		return nil, sesame.Object{}, err
	}
	o, err := g.object(ctx, ws, KindFunction, name)
	if err != nil {
		return nil, o, notFound(err, "function", name, ws)
	}
	key := objectKey(ws, KindFunction, name)
	g.mu.Lock()
	c, ok := g.parsed[key]
	g.mu.Unlock()
	// The same version with another body is another function: one deleted and created
	// again (on another replica, or with its workspace) starts again at version 1.
	if ok && c.version == o.Version && c.body == string(o.Body) {
		return c.fn, o, nil
	}
	f, err := function.Parse(name, o.Body)
	if err != nil {
		return nil, o, fmt.Errorf("gateway: stored function %s/%s no longer parses: %w", ws, name, err)
	}
	g.mu.Lock()
	g.parsed[key] = cachedFunc{version: o.Version, body: string(o.Body), fn: f}
	g.mu.Unlock()
	return f, o, nil
}

// GetFunction returns a function with its source.
func (g *Gateway) GetFunction(ctx context.Context, ws, name string) (FunctionView, error) {
	f, o, err := g.loadFunction(ctx, ws, name)
	if err != nil {
		return FunctionView{}, err
	}
	return FunctionView{Workspace: ws, Function: f, Source: string(o.Body), Version: o.Version, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}, nil
}

// ListFunctions returns a page of functions.
func (g *Gateway) ListFunctions(ctx context.Context, ws, after string, limit int) ([]FunctionView, error) {
	if err := checkWorkspace(ws); err != nil {
		return nil, err
	}
	objs, err := g.cfg.Store.ListObjects(ctx, ws, KindFunction, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]FunctionView, 0, len(objs))
	for _, o := range objs {
		f, err := function.Parse(o.Name, o.Body)
		if err != nil {
			return nil, fmt.Errorf("gateway: stored function %s/%s: %w", ws, o.Name, err)
		}
		out = append(out, FunctionView{Workspace: ws, Function: f, Source: string(o.Body), Version: o.Version, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt})
	}
	return out, nil
}

// DeleteFunction removes a function.
func (g *Gateway) DeleteFunction(ctx context.Context, ws, name string) error {
	if err := checkWorkspace(ws); err != nil {
		return err
	}
	if err := checkName("function", name); err != nil {
		return err
	}
	err := g.cfg.Store.DeleteObject(ctx, ws, KindFunction, name)
	g.forget(objectKey(ws, KindFunction, name))
	return err
}

// LoadDir stores every function defined in dir (*.yaml, *.yml, or Jigx's *.jigx; the name is the file
// name without the extension) in workspace ws. It stops at the first invalid file, naming it.
func (g *Gateway) LoadDir(ctx context.Context, ws, dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".jigx") {
			continue
		}
		src, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return n, err
		}
		if _, _, err := g.PutFunction(ctx, ws, strings.TrimSuffix(e.Name(), ext), src); err != nil {
			return n, fmt.Errorf("%s: %w", filepath.Join(dir, e.Name()), err)
		}
		n++
	}
	return n, nil
}
