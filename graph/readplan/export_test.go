package readplan

// OnSend sets a function that sees every statement the planners of this
// process send, with its arguments (nil: none).
func OnSend(fn func(sql string, args []any)) {
	if fn == nil {
		onSend.Store(nil)
		return
	}
	onSend.Store(&fn)
}

// SetMaxPrepared sets the bound on prepared statements per connection and
// returns the one before.
func SetMaxPrepared(n int) int {
	old := maxPrepared
	maxPrepared = n
	return old
}
