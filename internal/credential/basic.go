package credential

import (
	"strings"

	"github.com/sesamehq/sesame"
)

// basic is HTTP Basic authentication (RFC 7617).
var basic = Kind{
	Name:   "basic",
	Inject: injectBasic,
	Fields: []Field{
		{Name: "username", Type: String, Required: true, MaxLen: 1024},
		{Name: "password", Secret: true, Required: true},
	},
	Check: func(public map[string]any, _ func(string) bool) error {
		if strings.Contains(public["username"].(string), ":") {
			return sesame.Errorf(sesame.CodeInvalidField, "field %q must not contain ':' (RFC 7617)", "username")
		}
		return nil
	},
}
