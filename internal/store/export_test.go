package store

// ClassifyDriverError is classify for an error known to come from the database driver.
var ClassifyDriverError = func(err error) error { return classify(err, true) }
