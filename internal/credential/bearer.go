package credential

// bearer is a static token sent as "Authorization: <scheme> <token>".
var bearer = Kind{
	Name:   "bearer",
	Inject: injectBearer,
	Fields: []Field{
		{Name: "token", Secret: true, Required: true},
		{Name: "scheme", Type: String, Default: "Bearer", MaxLen: 64},
	},
	Check: func(public map[string]any, _ func(string) bool) error {
		return checkToken("scheme", public["scheme"].(string))
	},
}
