package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

const oauthUsage = `usage:
  sesame oauth authorize [-w WS] CREDENTIAL [--user END_USER] [--return-url URL]
                                         print the provider URL to send the user to
  sesame oauth grants    [-w WS] [--credential CREDENTIAL]
  sesame oauth revoke    [-w WS] CREDENTIAL [--user END_USER]
                                         revoke at the provider (if it can) and delete
  sesame oauth token     [-w WS] CONNECTION [--user END_USER]
                                         print the current access token (local calls)
  sesame oauth providers                 the provider template catalogue
  sesame oauth apps                      the organisation's shared OAuth apps
  sesame oauth app-get NAME
  sesame oauth app-put NAME FIELD=VALUE ... [--keep client_secret] | --file BODY.json
                                         create or replace a shared app (admin), e.g.
                                         grant=authorization_code client_id=ID
                                         client_secret=@secret.txt provider=google
                                         workspaces:='["acme","staging"]'
                                         (a workspace credential then names it:
                                         sesame cred put KEY --type oauth2 oauth_app=NAME)
  sesame oauth app-rm NAME`

type grantView struct {
	Credential   string     `json:"credential"`
	User         string     `json:"user"`
	Status       string     `json:"status"`
	Reason       string     `json:"reason"`
	ValidUntil   *time.Time `json:"valid_until"`
	LastRefresh  *time.Time `json:"last_refresh_at"`
	AuthorizeURL string     `json:"authorize_url"`
}

func oauthCommand(ctx context.Context, c *client, args []string) error {
	if len(args) == 0 {
		return usagef(oauthUsage)
	}
	fs := c.flags("oauth " + args[0])
	ws := fs.String("w", "default", "workspace")
	user := fs.String("user", "", "end user (default: the workspace's own grant)")
	returnURL := fs.String("return-url", "", "authorize: where the callback sends the browser back")
	cred := fs.String("credential", "", "grants: only this credential's grants")
	file := fs.String("file", "", "app-put: read the whole JSON body from this file (- for stdin)")
	var keep listFlag
	fs.Var(&keep, "keep", "app-put: keep the stored value of this secret field")
	pos, err := c.parse(fs, args[1:])
	if err != nil {
		return err
	}
	one := func() (string, error) {
		if len(pos) != 1 {
			return "", usagef(oauthUsage)
		}
		return pos[0], nil
	}
	wsPath := "/v1/workspaces/" + url.PathEscape(*ws)
	switch args[0] {
	case "authorize":
		name, err := one()
		if err != nil {
			return err
		}
		q := url.Values{"workspace": {*ws}, "credential": {name}, "redirect": {"false"}}
		if *user != "" {
			q.Set("user", *user)
		}
		if *returnURL != "" {
			q.Set("return_url", *returnURL)
		}
		var raw json.RawMessage
		if err := c.do(ctx, http.MethodGet, "/v1/oauth/authorize", q, nil, &raw); err != nil {
			return err
		}
		if c.json {
			return c.printRaw(raw)
		}
		var a struct {
			URL       string    `json:"authorize_url"`
			ExpiresAt time.Time `json:"expires_at"`
		}
		_ = json.Unmarshal(raw, &a)
		fmt.Fprintln(c.env.Stdout, a.URL)
		fmt.Fprintf(c.env.Stderr, "open this URL in a browser before %s\n", fmtTime(a.ExpiresAt))
		return nil
	case "grants":
		var all []grantView
		q := url.Values{"limit": {"1000"}}
		if *cred != "" {
			q.Set("credential", *cred)
		}
		for {
			var page struct {
				Items      []grantView `json:"items"`
				NextCursor string      `json:"next_cursor"`
			}
			if err := c.do(ctx, http.MethodGet, wsPath+"/oauth/grants", q, nil, &page); err != nil {
				return err
			}
			all = append(all, page.Items...)
			if page.NextCursor == "" {
				break
			}
			q.Set("cursor", page.NextCursor)
		}
		if c.json {
			return c.printJSON(all)
		}
		rows := make([][]string, len(all))
		for i, g := range all {
			u := g.User
			if u == "" {
				u = "(workspace)"
			}
			status := g.Status
			if g.Reason != "" {
				status += " (" + g.Reason + ")"
			}
			rows[i] = []string{g.Credential, u, status, fmtPtr(g.ValidUntil), fmtPtr(g.LastRefresh)}
		}
		return c.table([]string{"CREDENTIAL", "END USER", "STATUS", "VALID UNTIL", "LAST REFRESH"}, rows)
	case "revoke":
		name, err := one()
		if err != nil {
			return err
		}
		q := url.Values{}
		if *user != "" {
			q.Set("user", *user)
		}
		var res struct {
			Deleted           bool   `json:"deleted"`
			RevokedAtProvider bool   `json:"revoked_at_provider"`
			RevocationError   string `json:"revocation_error"`
		}
		if err := c.do(ctx, http.MethodDelete, wsPath+"/oauth/grants/"+url.PathEscape(name), q, nil, &res); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(res)
		}
		fmt.Fprintf(c.env.Stdout, "grant deleted; revoked at the provider: %s\n", strconv.FormatBool(res.RevokedAtProvider))
		if res.RevocationError != "" {
			fmt.Fprintf(c.env.Stdout, "the provider may still hold the consent: %s\n", res.RevocationError)
		}
		return nil
	case "token":
		name, err := one()
		if err != nil {
			return err
		}
		q := url.Values{}
		if *user != "" {
			q.Set("user", *user)
		}
		var raw json.RawMessage
		if err := c.do(ctx, http.MethodGet, wsPath+"/connections/"+url.PathEscape(name)+"/token", q, nil, &raw); err != nil {
			return err
		}
		if c.json {
			return c.printRaw(raw)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.Unmarshal(raw, &tok)
		fmt.Fprintln(c.env.Stdout, tok.AccessToken)
		return nil
	case "apps":
		items, err := listAll[credential](ctx, c, "/v1/oauth/apps")
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(items)
		}
		rows := make([][]string, len(items))
		for i, a := range items {
			id, _ := a.Fields["client_id"].(string)
			rows[i] = []string{a.Key, id, fmt.Sprint(a.Fields["workspaces"]), fmtTime(a.UpdatedAt)}
		}
		return c.table([]string{"NAME", "CLIENT ID", "WORKSPACES", "UPDATED"}, rows)
	case "app-get", "app-rm":
		name, err := one()
		if err != nil {
			return err
		}
		if args[0] == "app-rm" {
			return c.do(ctx, http.MethodDelete, "/v1/oauth/apps/"+url.PathEscape(name), nil, nil, nil)
		}
		var a credential
		if err := c.do(ctx, http.MethodGet, "/v1/oauth/apps/"+url.PathEscape(name), nil, nil, &a); err != nil {
			return err
		}
		return c.printCredential(a)
	case "app-put":
		if len(pos) < 1 {
			return usagef(oauthUsage)
		}
		typ := "oauth2"
		if *file != "" {
			typ = ""
		}
		body, err := c.credBody(typ, *file, pos[1:], keep)
		if err != nil {
			return err
		}
		defer clear(body)
		var a credential
		if err := c.do(ctx, http.MethodPut, "/v1/oauth/apps/"+url.PathEscape(pos[0]), nil, body, &a); err != nil {
			return err
		}
		return c.printCredential(a)
	case "providers":
		var page struct {
			Items []struct {
				Name    string `json:"name"`
				Title   string `json:"title"`
				PKCE    bool   `json:"pkce"`
				AuthURL string `json:"auth_url"`
			} `json:"items"`
		}
		var raw json.RawMessage
		if err := c.do(ctx, http.MethodGet, "/v1/oauth/providers", nil, nil, &raw); err != nil {
			return err
		}
		if c.json {
			return c.printRaw(raw)
		}
		_ = json.Unmarshal(raw, &page)
		rows := make([][]string, len(page.Items))
		for i, p := range page.Items {
			rows[i] = []string{p.Name, p.Title, strconv.FormatBool(p.PKCE), p.AuthURL}
		}
		return c.table([]string{"NAME", "PROVIDER", "PKCE", "AUTH URL"}, rows)
	}
	return usagef(oauthUsage)
}
