package wstransport

// awaitInput parks the connection's reader until the client has sent
// something (or the connection ended), in as shallow a call as the system
// allows, before coder/websocket's Read: an idle connection's reader waits
// for months, and its goroutine's stack is most of what it costs. Parked
// deep inside Read (about 1.5 KiB of frames) a stack cannot shrink below
// 4 KiB; parked here (well under 1 KiB) the collector halves it to the 2
// KiB minimum. A message coder/websocket's reader holds already is read at
// once. Drop this once an idle Read parks that shallowly itself.
func (c *conn) awaitInput() {
	if c.readAhead { // the first read takes them (coder/websocket's accept)
		c.readAhead = false
		return
	}
	c.mu.Lock()
	ready := c.closing || c.br == nil || c.br.Buffered() > 0 // Close reads br too
	c.mu.Unlock()
	if !ready {
		awaitReadable(c.net)
	}
}
