package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

const connUsage = `usage:
  sesame conn list [-w WS]
  sesame conn get  [-w WS] NAME
  sesame conn put  [-w WS] NAME --file CONN.json [--no-test]     (- reads stdin)
  sesame conn put  [-w WS] NAME --base-uri URL [--credential KEY] [--test-path /ping] [--no-test]
  sesame conn test [-w WS] NAME
  sesame conn rm   [-w WS] NAME`

type connView struct {
	Name       string `json:"name"`
	BaseURI    string `json:"base_uri"`
	Credential string `json:"credential"`
	Test       *struct {
		OK        bool    `json:"ok"`
		Status    int     `json:"status"`
		LatencyMS float64 `json:"latency_ms"`
		Error     string  `json:"error"`
	} `json:"test"`
	UpdatedAt time.Time `json:"updated_at"`
}

func connCommand(ctx context.Context, c *client, args []string) error {
	if len(args) == 0 {
		return usagef(connUsage)
	}
	fs := c.flags("conn " + args[0])
	ws := fs.String("w", "default", "workspace")
	file := fs.String("file", "", "put: the connection as JSON")
	baseURI := fs.String("base-uri", "", "put: base URI")
	cred := fs.String("credential", "", "put: credential key")
	testPath := fs.String("test-path", "", "put: path of the test request (GET)")
	noTest := fs.Bool("no-test", false, "put: save without running the test request")
	pos, err := c.parse(fs, args[1:])
	if err != nil {
		return err
	}
	base := "/v1/workspaces/" + url.PathEscape(*ws) + "/connections"
	one := func() (string, error) {
		if len(pos) != 1 {
			return "", usagef(connUsage)
		}
		return base + "/" + url.PathEscape(pos[0]), nil
	}
	switch args[0] {
	case "list", "ls":
		items, err := listAll[connView](ctx, c, base)
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(items)
		}
		rows := make([][]string, len(items))
		for i, v := range items {
			rows[i] = []string{v.Name, v.BaseURI, v.Credential, fmtTime(v.UpdatedAt)}
		}
		return c.table([]string{"NAME", "BASE URI", "CREDENTIAL", "UPDATED"}, rows)
	case "get":
		path, err := one()
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := c.do(ctx, http.MethodGet, path, nil, nil, &raw); err != nil {
			return err
		}
		return c.printRaw(raw)
	case "put":
		path, err := one()
		if err != nil {
			return err
		}
		var body json.RawMessage
		if *file != "" {
			if body, err = c.readSource(*file); err != nil {
				return err
			}
		} else {
			if *baseURI == "" {
				return usagef("conn put needs --file or --base-uri")
			}
			m := map[string]any{"base_uri": *baseURI}
			if *cred != "" {
				m["credential"] = *cred
			}
			if *testPath != "" {
				m["test"] = map[string]any{"path": *testPath}
			}
			body, _ = json.Marshal(m)
		}
		q := url.Values{}
		if *noTest {
			q.Set("test", "false")
		}
		var v connView
		var raw json.RawMessage
		if err := c.do(ctx, http.MethodPut, path, q, body, &raw); err != nil {
			return err
		}
		if c.json {
			return c.printRaw(raw)
		}
		_ = json.Unmarshal(raw, &v)
		fmt.Fprintf(c.env.Stdout, "connection %s saved (%s)\n", v.Name, v.BaseURI)
		if v.Test != nil {
			fmt.Fprintf(c.env.Stdout, "test: ok, status %d in %.1f ms\n", v.Test.Status, v.Test.LatencyMS)
		}
		return nil
	case "test":
		path, err := one()
		if err != nil {
			return err
		}
		var res struct {
			OK        bool    `json:"ok"`
			Status    int     `json:"status"`
			LatencyMS float64 `json:"latency_ms"`
			Error     string  `json:"error"`
		}
		if err := c.do(ctx, http.MethodPost, path+"/test", nil, nil, &res); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(res)
		}
		if err := c.table([]string{"OK", "STATUS", "LATENCY", "ERROR"},
			[][]string{{strconv.FormatBool(res.OK), strconv.Itoa(res.Status), fmt.Sprintf("%.1f ms", res.LatencyMS), res.Error}}); err != nil {
			return err
		}
		if !res.OK {
			return fmt.Errorf("connection test failed")
		}
		return nil
	case "rm", "delete":
		path, err := one()
		if err != nil {
			return err
		}
		return c.do(ctx, http.MethodDelete, path, nil, nil, nil)
	}
	return usagef(connUsage)
}

const fnUsage = `usage:
  sesame fn list [-w WS]
  sesame fn get  [-w WS] NAME
  sesame fn put  [-w WS] NAME --file FUNCTION.yaml      (- reads stdin)
  sesame fn call [-w WS] NAME [PARAM=VALUE | PARAM:=JSON ...]
  sesame fn rm   [-w WS] NAME
  sesame fn import [-w WS] DIR                          (a Jigx solution's functions/ folder: every *.jigx file, recursively)`

func fnCommand(ctx context.Context, c *client, args []string) error {
	if len(args) == 0 {
		return usagef(fnUsage)
	}
	fs := c.flags("fn " + args[0])
	ws := fs.String("w", "default", "workspace")
	file := fs.String("file", "", "put: the function as YAML or JSON")
	pos, err := c.parse(fs, args[1:])
	if err != nil {
		return err
	}
	base := "/v1/workspaces/" + url.PathEscape(*ws) + "/functions"
	if args[0] != "list" && args[0] != "ls" && len(pos) < 1 {
		return usagef(fnUsage)
	}
	switch args[0] {
	case "list", "ls":
		items, err := listAll[struct {
			Name       string    `json:"name"`
			Method     string    `json:"method"`
			Connection string    `json:"connection"`
			URL        string    `json:"url"`
			Path       string    `json:"path"`
			UpdatedAt  time.Time `json:"updated_at"`
		}](ctx, c, base)
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(items)
		}
		rows := make([][]string, len(items))
		for i, f := range items {
			target := f.Connection
			if target == "" {
				target = f.URL
			}
			rows[i] = []string{f.Name, f.Method, target, f.Path, fmtTime(f.UpdatedAt)}
		}
		return c.table([]string{"NAME", "METHOD", "TARGET", "PATH", "UPDATED"}, rows)
	case "get":
		var raw json.RawMessage
		if err := c.do(ctx, http.MethodGet, base+"/"+url.PathEscape(pos[0]), nil, nil, &raw); err != nil {
			return err
		}
		if c.json {
			return c.printRaw(raw)
		}
		var f struct {
			Source string `json:"source"`
		}
		_ = json.Unmarshal(raw, &f)
		_, err := fmt.Fprint(c.env.Stdout, f.Source)
		return err
	case "put":
		if *file == "" {
			return usagef("fn put needs --file")
		}
		src, err := c.readSource(*file)
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := c.doRaw(ctx, http.MethodPut, base+"/"+url.PathEscape(pos[0]), "application/yaml", src, &raw); err != nil {
			return err
		}
		if c.json {
			return c.printRaw(raw)
		}
		fmt.Fprintf(c.env.Stdout, "function %s saved\n", pos[0])
		return nil
	case "call":
		params := map[string]any{}
		for _, a := range pos[1:] {
			if name, raw, ok := strings.Cut(a, ":="); ok && !strings.Contains(name, "=") {
				var v any
				if err := json.Unmarshal([]byte(raw), &v); err != nil {
					return usagef("parameter %s: value after := must be JSON", name)
				}
				params[name] = v
				continue
			}
			name, v, ok := strings.Cut(a, "=")
			if !ok || name == "" {
				return usagef("parameter %q must be NAME=VALUE or NAME:=JSON", a)
			}
			params[name] = v
		}
		var raw json.RawMessage
		if err := c.do(ctx, http.MethodPost, base+"/"+url.PathEscape(pos[0])+"/call", nil, map[string]any{"parameters": params}, &raw); err != nil {
			return err
		}
		return c.printRaw(raw)
	case "rm", "delete":
		return c.do(ctx, http.MethodDelete, base+"/"+url.PathEscape(pos[0]), nil, nil, nil)
	case "import":
		return c.importFunctions(ctx, base, pos[0])
	}
	return usagef(fnUsage)
}

// importResult is one file of `fn import`.
type importResult struct {
	File  string `json:"file"`
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// importFunctions saves every *.jigx file under dir (recursively) as the function named
// after the file, reporting each file's result. It fails if any file failed.
func (c *client) importFunctions(ctx context.Context, base, dir string) error {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".jigx") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("fn import: %w", err)
	}
	if len(files) == 0 {
		return fmt.Errorf("fn import: no .jigx files under %s", dir)
	}
	sort.Strings(files)
	var results []importResult
	seen := map[string]string{}
	failed := 0
	for _, path := range files {
		r := importResult{File: path, Name: strings.TrimSuffix(filepath.Base(path), ".jigx")}
		if other, dup := seen[r.Name]; dup {
			r.Error = fmt.Sprintf("function %q is also defined in %s", r.Name, other)
		} else if src, err := c.readSource(path); err != nil {
			r.Error = err.Error()
		} else if err := c.doRaw(ctx, http.MethodPut, base+"/"+url.PathEscape(r.Name), "application/yaml", src, nil); err != nil {
			r.Error = err.Error()
		} else {
			r.OK = true
		}
		if _, dup := seen[r.Name]; !dup {
			seen[r.Name] = path
		}
		if !r.OK {
			failed++
		}
		results = append(results, r)
		if !c.json {
			if r.OK {
				fmt.Fprintf(c.env.Stdout, "ok      %s  (%s)\n", r.Name, r.File)
			} else {
				fmt.Fprintf(c.env.Stdout, "failed  %s  (%s): %s\n", r.Name, r.File, r.Error)
			}
		}
	}
	if c.json {
		if err := c.printJSON(results); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("fn import: %d of %d files failed", failed, len(files))
	}
	return nil
}

// printRaw pretty-prints a JSON document as received.
func (c *client) printRaw(raw json.RawMessage) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		_, err := c.env.Stdout.Write(raw)
		return err
	}
	return c.printJSON(v)
}
