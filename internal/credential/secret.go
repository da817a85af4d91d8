package credential

// secret is a named value that functions place wherever they say.
var secret = Kind{
	Name:   "secret",
	Inject: injectSecret,
	Fields: []Field{
		{Name: "value", Secret: true, Required: true},
	},
}
