package function

import (
	"encoding/json"
	"strings"
)

// JSONata as Jigx runs it (jsonata-js) takes a string literal as a path step for the
// field of that name: `$."@odata.nextLink"` is the field "@odata.nextLink". jsonata-go
// refuses a string in a path, so quotedSteps rewrites such a step into a backtick name,
// `$.`@odata.nextLink``, which both read alike. It tokenizes as jsonata-go's lexer does,
// so that a string literal elsewhere (an argument, an object key, a comparison) and text
// inside strings, names and regular expressions stay as they are. A string is a path step
// when a '.' comes before it, or after it (past any [predicate] groups), as jsonata-js
// decides. A name holding '`' cannot be a backtick name: it is left a string, and
// jsonata-go refuses it. Text that does not tokenize is returned unchanged, for the
// parser to report.

type stepToken struct {
	kind       byte // 's' string, 'd' the path operator '.', '[' and ']', 'o' other
	start, end int  // src[start:end] is the token, quotes included
}

// quotedSteps returns src with each string-literal path step rewritten as a backtick name.
func quotedSteps(src string) string {
	if !strings.ContainsAny(src, `"'`) {
		return src
	}
	toks, ok := stepTokens(src)
	if !ok {
		return src
	}
	var b strings.Builder
	last := 0
	for i, t := range toks {
		if t.kind != 's' || !isPathStep(toks, i) {
			continue
		}
		name, ok := unquoteJSONata(src[t.start:t.end])
		if !ok || strings.Contains(name, "`") {
			continue
		}
		b.WriteString(src[last:t.start])
		b.WriteString("`" + name + "`")
		last = t.end
	}
	if last == 0 {
		return src
	}
	b.WriteString(src[last:])
	return b.String()
}

// isPathStep reports whether string token i is a step of a path.
func isPathStep(toks []stepToken, i int) bool {
	if i > 0 && toks[i-1].kind == 'd' {
		return true
	}
	depth := 0
	for j := i + 1; j < len(toks); j++ {
		switch k := toks[j].kind; {
		case k == '[':
			depth++
		case k == ']':
			depth--
			if depth < 0 {
				return false
			}
		case depth == 0:
			return k == 'd'
		}
	}
	return false
}

// stepTokens splits src into tokens the way jsonata-go's lexer does, as far as
// quotedSteps needs: strings, backtick names, regular expressions, numbers, names and
// operators. ok is false for text the lexer would refuse (such as an unterminated string).
func stepTokens(src string) (toks []stepToken, ok bool) {
	operand := false // whether the last token ends an operand: a '/' then divides
	i := 0
	for i < len(src) {
		c := src[i]
		start := i
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v':
			i++
			continue
		case c == '"' || c == '\'':
			i++
			for i < len(src) && src[i] != c {
				if src[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(src) {
				return nil, false
			}
			i++
			toks = append(toks, stepToken{'s', start, i})
			operand = true
		case c == '`':
			end := strings.IndexByte(src[i+1:], '`')
			if end < 0 {
				return nil, false
			}
			i += end + 2
			toks = append(toks, stepToken{'o', start, i})
			operand = true
		case c == '/' && !operand:
			if i = skipRegex(src, i+1); i < 0 {
				return nil, false
			}
			toks = append(toks, stepToken{'o', start, i})
			operand = true
		case c == '.':
			if i+1 < len(src) && src[i+1] == '.' {
				i += 2
				toks = append(toks, stepToken{'o', start, i})
			} else {
				i++
				toks = append(toks, stepToken{'d', start, i})
			}
			operand = false
		case c >= '0' && c <= '9':
			i = skipNumber(src, i)
			toks = append(toks, stepToken{'o', start, i})
			operand = true
		case isStepSymbol(c):
			i++
			if i < len(src) && ((c == '!' || c == '<' || c == '>' || c == ':') && src[i] == '=' ||
				c == '~' && src[i] == '>' || c == '*' && src[i] == '*') {
				i++
			}
			kind := byte('o')
			if c == '[' || c == ']' {
				kind = c
			}
			toks = append(toks, stepToken{kind, start, i})
			operand = c == ')' || c == ']' || c == '}'
		default: // a name or variable, up to whitespace or an operator
			i++
			for i < len(src) && !isStepSymbol(src[i]) && src[i] != '.' &&
				src[i] != ' ' && src[i] != '\t' && src[i] != '\n' && src[i] != '\r' && src[i] != '\v' {
				i++
			}
			toks = append(toks, stepToken{'o', start, i})
			switch src[start:i] {
			case "and", "or", "in":
				operand = false
			default:
				operand = true
			}
		}
	}
	return toks, true
}

// isStepSymbol reports whether c starts an operator in jsonata-go's lexer (other than '.').
func isStepSymbol(c byte) bool {
	return strings.IndexByte("[]{}(),;:?+-*/%|=<>^&!~", c) >= 0
}

// skipRegex returns the index after the regular expression whose body starts at i (the
// opening '/' consumed) and its flags, or -1 if it does not end, as jsonata-go's lexer reads it.
func skipRegex(src string, i int) int {
	depth := 0
	for ; i < len(src); i++ {
		switch src[i] {
		case '/':
			if depth == 0 {
				i++
				for i < len(src) && (src[i] == 'i' || src[i] == 'm' || src[i] == 's') {
					i++
				}
				return i
			}
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case '\\':
			if i+1 >= len(src) || src[i+1] == '\n' {
				return -1
			}
			i++
		case '\n':
			return -1
		}
	}
	return -1
}

// skipNumber returns the index after the number literal at i.
func skipNumber(src string, i int) int {
	digits := func() {
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
		}
	}
	digits()
	if i+1 < len(src) && src[i] == '.' && src[i+1] >= '0' && src[i+1] <= '9' {
		i++
		digits()
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		j := i + 1
		if j < len(src) && (src[j] == '+' || src[j] == '-') {
			j++
		}
		if j < len(src) && src[j] >= '0' && src[j] <= '9' {
			i = j
			digits()
		}
	}
	return i
}

// unquoteJSONata returns the text of a JSONata string literal (quotes included in lit):
// JSON escapes, and \' in either kind of string.
func unquoteJSONata(lit string) (string, bool) {
	body := lit[1 : len(lit)-1]
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c == '\\' && i+1 < len(body) && body[i+1] == '\'':
			b.WriteByte('\'')
			i++
		case c == '\\' && i+1 < len(body):
			b.WriteByte(c)
			b.WriteByte(body[i+1])
			i++
		case c == '"':
			b.WriteString(`\"`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	var s string
	if err := json.Unmarshal([]byte(b.String()), &s); err != nil {
		return "", false
	}
	return s, true
}
