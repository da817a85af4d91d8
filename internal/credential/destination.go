package credential

import (
	"reflect"
	"slices"
)

// endpoints returns the URLs a kind sends a credential's secrets to by itself (a token
// endpoint, say), as they take effect: the kind's Endpoints, or else its URL fields.
func (k *Kind) endpoints(public map[string]any) map[string]string {
	if k.Endpoints != nil {
		return k.Endpoints(public)
	}
	out := map[string]string{}
	for _, f := range k.Fields {
		if f.Type == URL {
			if s, ok := public[f.Name].(string); ok && s != "" {
				out[f.Name] = s
			}
		}
	}
	return out
}

// DestinationChange names what would change where a stored credential's secrets may be
// sent if it became in: its type, its "hosts" (narrowing them is no change) or one of the
// URLs its kind sends them to. It returns "" when nothing does.
func DestinationChange(oldType string, oldPublic map[string]any, in Input) string {
	if oldType != in.Kind.Name {
		return "type"
	}
	oldHosts, newHosts := canonicalHosts(Hosts(oldPublic)), canonicalHosts(Hosts(in.Public))
	if len(oldHosts) == 0 && len(newHosts) > 0 {
		return "hosts"
	}
	for _, h := range newHosts {
		if !slices.Contains(oldHosts, h) {
			return "hosts"
		}
	}
	if len(oldHosts) > 0 && len(newHosts) == 0 {
		return "hosts"
	}
	oldEnd, newEnd := in.Kind.endpoints(oldPublic), in.Kind.endpoints(in.Public)
	for _, name := range sortedKeys(oldEnd, newEnd) {
		if oldEnd[name] != newEnd[name] {
			return name
		}
	}
	return ""
}

// KeyParamChange names a field that says how a stored secret is read (a JWT's alg, an
// HMAC secret's encoding) and that differs between the stored credential and in, or "".
// Such a change needs the secret sent again: checking a stored secret against new
// settings would tell the caller something about it.
func KeyParamChange(oldType string, oldPublic map[string]any, in Input) string {
	if oldType != in.Kind.Name {
		return ""
	}
	for _, f := range in.Kind.Fields {
		if f.KeyParam && !reflect.DeepEqual(oldPublic[f.Name], in.Public[f.Name]) {
			return f.Name
		}
	}
	return ""
}

func sortedKeys(ms ...map[string]string) []string {
	var out []string
	for _, m := range ms {
		for k := range m {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
