package credential

import "github.com/sesamehq/sesame"

// checkToken checks that s is an RFC 9110 token, as header names and auth schemes must be.
func checkToken(field, s string) error {
	if s == "" {
		return sesame.Errorf(sesame.CodeInvalidField, "field %q must not be empty", field)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !ok && !contains("!#$%&'*+-.^_`|~", c) {
			return sesame.Errorf(sesame.CodeInvalidField, "field %q must be a valid HTTP token (letters, digits and !#$%%&'*+-.^_`|~)", field)
		}
	}
	return nil
}

func contains(set string, c byte) bool {
	for i := 0; i < len(set); i++ {
		if set[i] == c {
			return true
		}
	}
	return false
}
