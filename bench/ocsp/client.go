package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// maxBody bounds the body of an answer; OCSP answers here are under 1 KiB.
const maxBody = 1 << 20

// rawConn is one worker's HTTP/1.1 client connection: it writes a prebuilt
// request and reads the answer's status line, headers and Content-Length
// bytes of body, nothing more. It keeps the connection when the answer
// allows (HTTP/1.1 without "Connection: close", or HTTP/1.0 with
// "Connection: keep-alive") and otherwise dials again for the next request:
// openssl ocsp answers HTTP/1.0 and closes every connection. It costs a
// fraction of net/http's client per request, which matters when client and
// server share two cores.
//
// It connects only to send a request at once: openssl ocsp wedges on a
// connection closed before its request line.
type rawConn struct {
	addr    string
	timeout time.Duration // per request, from the write to the last body byte

	conn net.Conn
	br   *bufio.Reader
	body []byte // the last answer's body, reused

	dials int // connections opened
}

func newRawConn(addr string, timeout time.Duration) *rawConn {
	return &rawConn{addr: addr, timeout: timeout, body: make([]byte, 0, 2048)}
}

// do sends req and reads its answer. The answer's body is valid until the
// next call. A kept connection the server closed before answering (an idle
// timeout) is dialled again once.
func (c *rawConn) do(req []byte) (response, error) {
	for attempt := 0; ; attempt++ {
		fresh := c.conn == nil
		if fresh {
			if err := c.dial(); err != nil {
				return response{}, err
			}
		}
		r, err := c.roundTrip(req)
		if err == nil {
			if !r.keepAlive {
				c.close()
			}
			return r, nil
		}
		c.close()
		if fresh || r.started || attempt > 0 || !errors.Is(err, io.EOF) {
			return response{}, err
		}
	}
}

func (c *rawConn) dial() error {
	conn, err := net.DialTimeout("tcp", c.addr, c.timeout)
	if err != nil {
		return err
	}
	c.dials++
	c.conn = conn
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 4096)
	} else {
		c.br.Reset(conn)
	}
	return nil
}

// roundTrip writes req and reads one answer.
func (c *rawConn) roundTrip(req []byte) (response, error) {
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return response{}, err
	}
	if _, err := c.conn.Write(req); err != nil {
		return response{}, err
	}
	r, err := readResponse(c.br, c.body[:0])
	if cap(r.body) > cap(c.body) {
		c.body = r.body[:0]
	}
	return r, err
}

func (c *rawConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// response is what readResponse read of one HTTP answer.
type response struct {
	status    int
	keepAlive bool   // the connection may carry another request
	body      []byte // Content-Length bytes
	started   bool   // at least the status line arrived (also on error)
}

// readResponse reads one HTTP/1.x answer from br: the status line, the
// headers, and a body of exactly Content-Length bytes, appended to buf.
// An answer without Content-Length, or with Transfer-Encoding, is an
// error: both servers under test send Content-Length, and a body that
// runs to the end of the connection cannot be timed as one answer. 1xx
// answers are not expected (no Expect header is sent) and are an error.
func readResponse(br *bufio.Reader, buf []byte) (response, error) {
	var r response
	line, err := readLine(br)
	if err != nil {
		return r, err
	}
	r.started = true
	// HTTP/1.x SP 3DIGIT [SP reason]
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' ||
		(len(line) > 12 && line[12] != ' ') {
		return r, fmt.Errorf("malformed status line %q", truncate(line))
	}
	switch line[7] {
	case '1':
		r.keepAlive = true
	case '0':
		r.keepAlive = false
	default:
		return r, fmt.Errorf("malformed status line %q", truncate(line))
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return r, fmt.Errorf("malformed status line %q", truncate(line))
		}
		r.status = r.status*10 + int(d-'0')
	}
	if r.status < 200 {
		return r, fmt.Errorf("unexpected informational answer %q", truncate(line))
	}
	length := -1
	for {
		line, err := readLine(br)
		if err != nil {
			return r, err
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 {
			return r, fmt.Errorf("malformed header line %q", truncate(line))
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, ok := parseLength(value)
			if !ok || (length >= 0 && n != length) {
				return r, fmt.Errorf("bad Content-Length %q", truncate(value))
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return r, fmt.Errorf("unsupported Transfer-Encoding %q: want Content-Length", truncate(value))
		case bytes.EqualFold(name, []byte("Connection")):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				switch tok = bytes.TrimSpace(tok); {
				case bytes.EqualFold(tok, []byte("close")):
					r.keepAlive = false
				case bytes.EqualFold(tok, []byte("keep-alive")):
					r.keepAlive = true
				}
			}
		}
	}
	if length < 0 {
		if r.status == 204 || r.status == 304 {
			length = 0
		} else {
			return r, fmt.Errorf("HTTP %d answer without Content-Length", r.status)
		}
	}
	if length > maxBody {
		return r, fmt.Errorf("Content-Length %d over %d", length, maxBody)
	}
	if cap(buf) < length {
		buf = make([]byte, 0, length)
	}
	r.body = buf[:length]
	if _, err := io.ReadFull(br, r.body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return r, fmt.Errorf("read %d-byte body: %w", length, err)
	}
	return r, nil
}

// readLine returns the next line without its CRLF (or LF). The line is
// valid until the next read from br.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("header line too long")
		}
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// parseLength parses a non-negative decimal Content-Length.
func parseLength(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int(d-'0')
	}
	return n, true
}

func truncate(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// ocspSuccessful reports whether der starts like an OCSPResponse whose
// responseStatus is successful (0): SEQUENCE { ENUMERATED 0, ... }. It is
// the cheap check every timed answer gets; a sample is fully verified after
// the timed window.
func ocspSuccessful(der []byte) bool {
	if len(der) < 2 || der[0] != 0x30 {
		return false
	}
	i := 2
	if l := der[1]; l&0x80 != 0 {
		i += int(l & 0x7f)
	}
	return len(der) >= i+3 && der[i] == 0x0a && der[i+1] == 0x01 && der[i+2] == 0x00
}
