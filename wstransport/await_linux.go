package wstransport

import (
	"net"
	"syscall"
)

// awaitReadable waits until conn has bytes to read, an end or an error
// (which Read then reports), without reading: a peek of one byte that
// would block parks the goroutine in the runtime's network poller.
func awaitReadable(conn net.Conn) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	var b [1]byte
	_ = raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN
	})
}
