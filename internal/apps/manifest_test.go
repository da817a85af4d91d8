package apps

import (
	"strings"
	"testing"

	"github.com/sesamehq/sesame"
)

func TestParseManifest(t *testing.T) {
	ok := []struct {
		body string
		want Manifest
	}{
		{`{"appId":"com.example.app","displayName":"Example","version":"1.0"}`, Manifest{"com.example.app", "Example", "1.0", ""}},
		{` {"appId":"com.acme.app","displayName":"Ä ü","version":"v2","signature":"abc","icon":{"x":1},"n":3} `, Manifest{"com.acme.app", "Ä ü", "v2", "abc"}},
		{`{"appId":"io.x-y.a1","displayName":"x","version":"1","signature":null}`, Manifest{"io.x-y.a1", "x", "1", ""}},
		{`{"appId":"` + strings.Repeat("a", 63) + `.b","displayName":"x","version":"1"}`, Manifest{strings.Repeat("a", 63) + ".b", "x", "1", ""}},
	}
	for _, c := range ok {
		got, err := ParseManifest([]byte(c.body))
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v", c.body, got, err)
		}
	}
	bad := []struct {
		name string
		body string
		code sesame.Code
	}{
		{"not JSON", `appId=com.example.app`, sesame.CodeBadRequest},
		{"array", `[{"appId":"com.example.app"}]`, sesame.CodeBadRequest},
		{"null", `null`, sesame.CodeBadRequest},
		{"two objects", `{"appId":"a.b","displayName":"x","version":"1"}{}`, sesame.CodeBadRequest},
		{"trailing garbage", `{"appId":"a.b","displayName":"x","version":"1"}]`, sesame.CodeBadRequest},
		{"empty", ``, sesame.CodeBadRequest},
		{"no appId", `{"displayName":"x","version":"1"}`, sesame.CodeManifestInvalid},
		{"no displayName", `{"appId":"com.example.app","version":"1"}`, sesame.CodeManifestInvalid},
		{"no version", `{"appId":"com.example.app","displayName":"x"}`, sesame.CodeManifestInvalid},
		{"empty version", `{"appId":"com.example.app","displayName":"x","version":""}`, sesame.CodeManifestInvalid},
		{"number version", `{"appId":"com.example.app","displayName":"x","version":1}`, sesame.CodeManifestInvalid},
		{"object signature", `{"appId":"com.example.app","displayName":"x","version":"1","signature":{}}`, sesame.CodeManifestInvalid},
		{"uppercase", `{"appId":"com.Example.app","displayName":"x","version":"1"}`, sesame.CodeManifestInvalid},
		{"one label", `{"appId":"app","displayName":"x","version":"1"}`, sesame.CodeManifestInvalid},
		{"trailing dot", `{"appId":"com.example.","displayName":"x","version":"1"}`, sesame.CodeManifestInvalid},
		{"leading dot", `{"appId":".com.example","displayName":"x","version":"1"}`, sesame.CodeManifestInvalid},
		{"empty label", `{"appId":"com..app","displayName":"x","version":"1"}`, sesame.CodeManifestInvalid},
		{"leading hyphen", `{"appId":"com.-x.app","displayName":"x","version":"1"}`, sesame.CodeManifestInvalid},
		{"trailing hyphen", `{"appId":"com.x-.app","displayName":"x","version":"1"}`, sesame.CodeManifestInvalid},
		{"underscore", `{"appId":"com.x_y.app","displayName":"x","version":"1"}`, sesame.CodeManifestInvalid},
		{"star", `{"appId":"com.example.*","displayName":"x","version":"1"}`, sesame.CodeManifestInvalid},
		{"unicode", `{"appId":"com.exämple.app","displayName":"x","version":"1"}`, sesame.CodeManifestInvalid},
		{"label of 64", `{"appId":"` + strings.Repeat("a", 64) + `.b","displayName":"x","version":"1"}`, sesame.CodeManifestInvalid},
		{"name of 254", `{"appId":"` + strings.Repeat("abcdefg.", 32)[:254] + `","displayName":"x","version":"1"}`, sesame.CodeManifestInvalid},
		{"control in name", `{"appId":"com.example.app","displayName":"a\u0000b","version":"1"}`, sesame.CodeManifestInvalid},
		{"newline in version", `{"appId":"com.example.app","displayName":"x","version":"1\n2"}`, sesame.CodeManifestInvalid},
		{"long name", `{"appId":"com.example.app","displayName":"` + strings.Repeat("x", 257) + `","version":"1"}`, sesame.CodeManifestInvalid},
		{"too large", `{"appId":"com.example.app","displayName":"x","version":"1","pad":"` + strings.Repeat("x", MaxManifestSize) + `"}`, sesame.CodeAppPayloadTooLarge},
	}
	for _, c := range bad {
		_, err := ParseManifest([]byte(c.body))
		if got := sesame.ErrorCode(err); got != c.code {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
	}
}

func TestDomains(t *testing.T) {
	cases := []struct {
		domain, app string
		covers      bool
	}{
		{"com.acme.*", "com.acme.app", true},
		{"com.acme.*", "com.acme.team.app", true},
		{"com.acme.*", "com.acme", false},
		{"com.acme.*", "com.acmex.app", false},
		{"com.acme.*", "com.other.app", false},
		{"com.acme.app", "com.acme.app", true},
		{"com.acme.app", "com.acme.app2", false},
		{"com.acme.app", "com.acme.app.x", false},
	}
	for _, c := range cases {
		if DomainCovers(c.domain, c.app) != c.covers {
			t.Errorf("DomainCovers(%q, %q) = %v", c.domain, c.app, !c.covers)
		}
	}
	for d, valid := range map[string]bool{"com.acme.*": true, "com.acme.app": true, "com.*": false, "*": false, "com.acme.*.*": false, "com.acme*": false, "": false} {
		if ValidDomain(d) != valid {
			t.Errorf("ValidDomain(%q) = %v", d, !valid)
		}
	}
	if !IsTrialAppID("com.example.app") || IsTrialAppID("com.example") || IsTrialAppID("com.examples.app") {
		t.Error("trial domain")
	}
}
