//go:build !linux

package wstransport

import "net"

// awaitReadable returns at once where peeking a socket is not done:
// Read parks the reader itself.
func awaitReadable(net.Conn) {}
