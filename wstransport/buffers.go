package wstransport

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// Buffer sizes of a websocket connection. net/http hands a hijacked
// connection over with its own 4 KiB reader and writer; once the handler
// has returned (Transport.Do) these are garbage, and the connection
// keeps smaller ones, since every idle subscription holds them: clients
// send small messages (connection_init, subscribe, pong), and a message
// larger than the write buffer costs one more write call, not a copy. At
// 512 bytes, acknowledgements, keep-alives and small objects leave in one
// write; a larger object in two (the buffer's first fill, then the rest of
// the message, which bufio writes straight from it), as any object larger
// than the 2 KiB the buffer used to be did. 1.5 KiB less per connection
// (issue 9: the idle subscription's memory).
const (
	wsReadBuffer  = 512
	wsWriteBuffer = 512
)

// smallBuffers is a ResponseWriter whose Hijack returns the connection with
// buffers of the sizes above, keeping any bytes net/http has already read;
// it keeps the connection (conn), for its write deadline (conn.writeRaw),
// and the reader (br), to know whether a message is buffered (awaitInput).
// readAhead tells that net/http had read the client's first bytes: they
// wait in the reader's source, not in the system's socket.
type smallBuffers struct {
	http.ResponseWriter
	conn      net.Conn
	br        *bufio.Reader
	readAhead bool
}

func (s *smallBuffers) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	s.conn = conn
	// Bytes net/http has read past the request (the client's first frames)
	// are handed over in the new reader's buffer: coder/websocket takes what
	// is buffered there and reads the rest from conn.
	br := bufio.NewReaderSize(conn, wsReadBuffer)
	if n := brw.Reader.Buffered(); n > 0 {
		s.readAhead = true
		b, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn), max(n, wsReadBuffer))
		if _, err := br.Peek(n); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	s.br = br
	if brw.Writer.Buffered() > 0 {
		if err := brw.Writer.Flush(); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, wsWriteBuffer)), nil
}
