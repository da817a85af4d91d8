package credential

// apiKey is a key sent in a header or query parameter. "name" and "in" say where the
// proxy puts it when no function says otherwise.
var apiKey = Kind{
	Name:   "api_key",
	Inject: injectAPIKey,
	Fields: []Field{
		{Name: "value", Secret: true, Required: true},
		{Name: "name", Type: String, Default: "X-API-Key", MaxLen: 256},
		{Name: "in", Type: String, Enum: []string{"header", "query"}, Default: "header"},
	},
	Check: func(public map[string]any, _ func(string) bool) error {
		return checkToken("name", public["name"].(string))
	},
}
