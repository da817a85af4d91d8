package provider_test

import (
	"net/url"
	"slices"
	"testing"

	"github.com/sesamehq/sesame/internal/oauth/provider"
)

func TestCatalogueCoversTheCommonProviders(t *testing.T) {
	names := provider.Names()
	for _, want := range []string{"github", "google", "microsoft", "salesforce", "slack", "hubspot", "atlassian", "dropbox", "zoom", "xero"} {
		if !slices.Contains(names, want) {
			t.Errorf("no template for %s", want)
		}
	}
	for _, tm := range provider.All() {
		for field, raw := range map[string]string{"auth_url": tm.AuthURL, "token_url": tm.TokenURL, "revocation_url": tm.RevocationURL} {
			if raw == "" && field == "revocation_url" {
				continue
			}
			u, err := url.Parse(raw)
			if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" {
				t.Errorf("%s: %s %q is not a plain https URL", tm.Name, field, raw)
			}
		}
		if tm.AuthStyle != "header" && tm.AuthStyle != "params" {
			t.Errorf("%s: auth_style %q", tm.Name, tm.AuthStyle)
		}
		if tm.TokenIn != "header" && (tm.TokenIn != "query" || tm.TokenParam == "") {
			t.Errorf("%s: token_in %q", tm.Name, tm.TokenIn)
		}
		if tm.Title == "" || tm.Notes == "" {
			t.Errorf("%s: no title or notes", tm.Name)
		}
	}
}

func TestLookupReturnsACopy(t *testing.T) {
	g, ok := provider.Lookup("google")
	if !ok || g.Name != "google" {
		t.Fatal("google not found")
	}
	g.Scopes[0] = "changed"
	g.AuthParams["prompt"] = "changed"
	again, _ := provider.Lookup("google")
	if again.Scopes[0] == "changed" || again.AuthParams["prompt"] == "changed" {
		t.Fatal("a caller changed the catalogue")
	}
	if _, ok := provider.Lookup("nope"); ok {
		t.Fatal("an unknown template was found")
	}
}
