package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// layoutCheck finds, on the page in the browser, what makes it unusable at a window W
// pixels wide: a page wider than the window, a form control entirely outside the window's
// width, or a main navigation link neither visible nor behind a labelled menu control. A
// mobile browser zooms out a page wider than the screen, which widens window.innerWidth to
// the page: that is an overflow too.
const layoutCheck = `((W) => {
  const p = [];
  if (window.innerWidth > W + 1) p.push('page zoomed out to fit: innerWidth ' + window.innerWidth + ' > ' + W);
  if (document.documentElement.scrollWidth > window.innerWidth + 1) p.push('page overflows: scrollWidth ' + document.documentElement.scrollWidth + ' > ' + window.innerWidth);
  const shown = el => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && r.right > 0 && r.left < W; };
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea, button')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue; // not rendered (e.g. a closed menu)
    if (r.right <= 0 || r.left >= W) p.push('control outside the window: ' + (el.id || el.name || el.textContent.trim()) + ' at ' + Math.round(r.left) + '..' + Math.round(r.right));
  }
  const links = document.querySelectorAll('nav[aria-label=Main] a');
  if (links.length === 0) p.push('no main navigation');
  for (const a of links) {
    if (shown(a)) continue;
    // Reachable through a menu control with a text label?
    const menu = a.closest('details');
    const summary = menu && menu.querySelector('summary');
    if (!summary || !summary.textContent.trim() || !shown(summary)) p.push('nav link unreachable: ' + a.textContent.trim());
  }
  return p;
})`

// TestBrowserConsoleLayout: every main console page, filled with long names, fits a phone
// (390×844) and a laptop (1280×800): nothing is wider than the window, every form control is
// at least partly within the window's width, and the main navigation is reachable.
func TestBrowserConsoleLayout(t *testing.T) {
	ctx := newTab(t)
	s := startServer(t, nil, "--data", t.TempDir())
	// Data with long names, so that tables are as wide as in real use.
	long := "payments.stripe.production.restricted-key-for-billing-reports"
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/"+long,
		`{"type":"api_key","fields":{"value":"layout-Secret-1","name":"X-Very-Long-Header-Name-For-Layout-Tests"}}`), 201)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/credentials/short.basic", `{"type":"basic","fields":{"username":"bob","password":"pw-layout-2"}}`), 201)
	mustStatus(t, s.do("PUT", "/v1/workspaces/default/connections/billing-reports-production?test=false",
		fmt.Sprintf(`{"base_uri":"https://api.payments.example.com/v2/accounts/acct_1234567890abcdef/reports","credential":%q}`, long)), 201)
	mustStatus(t, putYAML(s, "default", "monthly-billing-report",
		"connection: billing-reports-production\nmethod: GET\npath: /monthly/{year}/{month}/summary-with-line-items\nparameters:\n  year: {location: path, required: true, type: string}\n  month: {location: path, required: true, type: string}\n"), 201)
	user := decode[struct{ ID string }](t, mustStatus(t, s.do("POST", "/v1/users", `{"name":"someone.with.a.long.name@example.com"}`), 201))
	mustStatus(t, s.do("POST", "/v1/users/"+user.ID+"/keys", `{"name":"continuous-integration-deploy-key"}`), 201)
	mustStatus(t, s.do("POST", "/v1/grants", fmt.Sprintf(`{"role":"caller","user":%q,"workspace":"default"}`, user.ID)), 201)
	mustStatus(t, s.do("POST", "/v1/apps/certs", `{"dev_pubkey":"`+devPubkey(t)+`","domains":["com.example.payments.*","com.example.billing.reports"]}`), 201)
	createAgent(t, s, "plant-frankfurt-basement-rack-7")
	browserSignIn(t, ctx, s, s.AdminKey)

	pages := []struct{ name, path, ready string }{
		{"workspaces", "/console/workspaces", `#ws-name`},
		{"credentials", "/console/w/default/credentials", `#credentials`},
		{"credential form", "/console/w/default/credentials/new?type=oauth2", `#credential-form`},
		{"credential edit", "/console/w/default/credentials/" + long + "/edit", `#credential-form`},
		{"connections", "/console/w/default/connections", `#connections`},
		{"connection form", "/console/w/default/connections/new", `#connection-form`},
		{"agents", "/console/w/default/agents", `#agents`},
		{"functions", "/console/w/default/functions", `#functions`},
		{"function form", "/console/w/default/functions/monthly-billing-report/edit", `#function-form`},
		{"access", "/console/access", `#users`},
		{"keys", "/console/access/users/" + user.ID, `#keys`},
		{"apps", "/console/apps", `#certs`},
		{"audit", "/console/audit", `#events`},
	}
	sizes := []struct {
		w, h   int64
		mobile bool
	}{{390, 844, true}, {1280, 800, false}}
	for _, size := range sizes {
		opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
		if size.mobile {
			opts = append(opts, chromedp.EmulateMobile)
		}
		do(t, ctx, chromedp.EmulateViewport(size.w, size.h, opts...))
		for _, p := range pages {
			var problems []string
			do(t, ctx,
				chromedp.Navigate(s.URL+p.path),
				chromedp.WaitReady(p.ready, chromedp.ByQuery),
				chromedp.Evaluate(fmt.Sprintf("%s(%d)", layoutCheck, size.w), &problems),
			)
			if len(problems) > 0 {
				t.Errorf("%s at %d×%d: %s", p.name, size.w, size.h, strings.Join(problems, "; "))
			}
			pageHTML(t, ctx) // and the console's usual rules (labels, no inline style or script)
			if p.name == "credentials" && size.mobile {
				if shot := os.Getenv("SESAME_CONSOLE_PHONE_SCREENSHOT"); shot != "" {
					var png []byte
					do(t, ctx, chromedp.CaptureScreenshot(&png))
					if err := os.WriteFile(shot, png, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
}
