package access

import (
	"testing"

	"github.com/sesamehq/sesame"
)

func TestAppsOverlap(t *testing.T) {
	for _, c := range []struct {
		p, q string
		want bool
	}{
		{"com.acme.app", "com.acme.app", true},
		{"com.acme.app", "com.acme.other", false},
		{"com.acme.*", "com.acme.app", true},
		{"com.acme.*", "com.acme.a.b", true},
		{"com.acme.*", "com.acme", false},
		{"com.acme.*", "com.acmeco.app", false},
		{"com.acme.*", "com.acme.pay.*", true},
		{"com.acme.pay.*", "com.acme.*", true},
		{"com.acme.*", "com.acmeco.*", false},
		{"com.acme.*", "com.acme.*", true},
	} {
		if got := appsOverlap(c.p, c.q); got != c.want {
			t.Errorf("appsOverlap(%q, %q) = %v, want %v", c.p, c.q, got, c.want)
		}
		if got := appsOverlap(c.q, c.p); got != c.want {
			t.Errorf("appsOverlap(%q, %q) = %v, want %v", c.q, c.p, got, c.want)
		}
	}
}

func TestPolicyMissing(t *testing.T) {
	pol := func(ws string, privs ...sesame.Privilege) policy {
		set := map[sesame.Privilege]bool{}
		for _, p := range privs {
			set[p] = true
		}
		return policy{ws: set}
	}
	merge := func(ps ...policy) policy {
		out := policy{}
		for _, p := range ps {
			for ws, set := range p {
				out[ws] = set
			}
		}
		return out
	}
	const run, creds, admin = sesame.PrivRunFunctions, sesame.PrivManageCredentials, sesame.PrivAdmin
	for _, c := range []struct {
		name       string
		have, want policy
		priv       sesame.Privilege
		ws         string
	}{
		{"nothing wanted", pol("*"), policy{}, "", ""},
		{"held on all, wanted in one", pol("*", run), pol("dev", run), "", ""},
		{"held in one, wanted on all", pol("dev", run), pol("*", run), run, "*"},
		{"held in one, wanted in another", pol("dev", run), pol("prod", run), run, "prod"},
		{"admin implies the rest", pol("dev", admin), pol("dev", run, creds), "", ""},
		{"admin in one workspace is not admin on all", pol("dev", admin), pol("*", run), run, "*"},
		{"only admin gives admin", pol("*", run, creds), pol("dev", admin, run), admin, "dev"},
		{"all workspaces first", pol("dev", run), merge(pol("*", run), pol("a", creds)), run, "*"},
	} {
		p, ws, ok := c.have.missing(c.want)
		if ok != (c.priv != "") || p != c.priv || ws != c.ws {
			t.Errorf("%s: missing = %q %q %v, want %q %q", c.name, p, ws, ok, c.priv, c.ws)
		}
	}
}
