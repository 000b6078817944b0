package models

// errNotYet is returned by functions whose body is still being written.
var errNotYet = &Error{Kind: KindInternal, Message: "not implemented yet"}
