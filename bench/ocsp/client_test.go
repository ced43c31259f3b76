package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		status    int
		keepAlive bool
		body      string
		err       string // substring of the error; "" for none
	}{
		{
			name:      "gwpki: HTTP/1.1 with Content-Length",
			in:        "HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: 5\r\nCache-Control: max-age=3599\r\n\r\nhello",
			status:    200,
			keepAlive: true,
			body:      "hello",
		},
		{
			name:   "openssl ocsp: HTTP/1.0, closes",
			in:     "HTTP/1.0 200 OK\r\nContent-type: application/ocsp-response\r\nContent-Length: 3\r\n\r\nabc",
			status: 200,
			body:   "abc",
		},
		{
			name:      "HTTP/1.0 with Connection: keep-alive",
			in:        "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx",
			status:    200,
			keepAlive: true,
			body:      "x",
		},
		{
			name:   "HTTP/1.1 with Connection: close",
			in:     "HTTP/1.1 404 Not Found\r\nconnection: foo, close\r\ncontent-length: 2\r\n\r\nno",
			status: 404,
			body:   "no",
		},
		{
			name:      "bare LF line endings, status without reason",
			in:        "HTTP/1.1 200\nContent-Length: 0\n\n",
			status:    200,
			keepAlive: true,
			body:      "",
		},
		{
			name:      "304 without Content-Length",
			in:        "HTTP/1.1 304 Not Modified\r\nEtag: \"x\"\r\n\r\n",
			status:    304,
			keepAlive: true,
		},
		{name: "no Content-Length", in: "HTTP/1.0 200 OK\r\nContent-Type: x\r\n\r\nabc", err: "without Content-Length"},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", err: "Transfer-Encoding"},
		{name: "conflicting lengths", in: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", err: "Content-Length"},
		{name: "negative length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", err: "Content-Length"},
		{name: "huge length", in: "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", err: "over"},
		{name: "body cut short", in: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", err: "unexpected EOF"},
		{name: "headers cut short", in: "HTTP/1.1 200 OK\r\nContent-Len", err: "unexpected EOF"},
		{name: "nothing", in: "", err: "EOF"},
		{name: "not HTTP", in: "SSH-2.0-OpenSSH_9.2\r\n", err: "malformed status line"},
		{name: "HTTP/2 status line", in: "HTTP/2 200\r\n\r\n", err: "malformed status line"},
		{name: "bad status code", in: "HTTP/1.1 2x0 OK\r\n\r\n", err: "malformed status line"},
		{name: "informational", in: "HTTP/1.1 100 Continue\r\n\r\n", err: "informational"},
		{name: "header without colon", in: "HTTP/1.1 200 OK\r\nContent-Length 3\r\n\r\nabc", err: "malformed header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := readResponse(bufio.NewReader(strings.NewReader(tt.in)), nil)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("readResponse(%q) error = %v; want one containing %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("readResponse(%q): %v", tt.in, err)
			}
			if r.status != tt.status || r.keepAlive != tt.keepAlive || string(r.body) != tt.body {
				t.Errorf("readResponse(%q) = status %d, keep-alive %v, body %q; want %d, %v, %q",
					tt.in, r.status, r.keepAlive, r.body, tt.status, tt.keepAlive, tt.body)
			}
		})
	}
}

// TestReadResponseSequence reads answers one after the other from one
// connection, as a kept-alive connection delivers them, reusing the buffer.
func TestReadResponseSequence(t *testing.T) {
	in := "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none" +
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthree" +
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nxy"
	br := bufio.NewReader(strings.NewReader(in))
	buf := make([]byte, 0, 4)
	for _, want := range []string{"one", "three", "xy"} {
		r, err := readResponse(br, buf[:0])
		if err != nil {
			t.Fatalf("readResponse, expecting %q: %v", want, err)
		}
		if string(r.body) != want {
			t.Errorf("body %q; want %q", r.body, want)
		}
		buf = r.body
	}
	if _, err := readResponse(br, buf[:0]); !errors.Is(err, io.EOF) {
		t.Errorf("readResponse after the last answer: %v; want EOF", err)
	}
}

func TestOCSPSuccessful(t *testing.T) {
	tests := []struct {
		name string
		der  []byte
		want bool
	}{
		{"successful, long form length", []byte{0x30, 0x82, 0x02, 0xbf, 0x0a, 0x01, 0x00, 0xa0}, true},
		{"successful, short form length", []byte{0x30, 0x03, 0x0a, 0x01, 0x00}, true},
		{"malformedRequest", ocsp.MalformedRequestErrorResponse, false},
		{"tryLater", ocsp.TryLaterErrorResponse, false},
		{"internalError", ocsp.InternalErrorErrorResponse, false},
		{"truncated", []byte{0x30, 0x82, 0x02}, false},
		{"empty", nil, false},
		{"HTML", []byte("<html>"), false},
	}
	for _, tt := range tests {
		if got := ocspSuccessful(tt.der); got != tt.want {
			t.Errorf("ocspSuccessful(%s, % x) = %v; want %v", tt.name, tt.der, got, tt.want)
		}
	}
}

// TestRawConnKeepAlive has rawConn keep one connection to a server that
// allows it (Go's, as gwpki is) and dial per request to one that closes
// (as openssl ocsp does).
func TestRawConnKeepAlive(t *testing.T) {
	for _, tt := range []struct {
		name      string
		close     bool
		wantDials int
	}{
		{"keep-alive", false, 1},
		{"close", true, 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.close {
					w.Header().Set("Connection", "close")
				}
				w.Header().Set("Content-Length", "3")
				io.WriteString(w, r.URL.Path[1:4])
			}))
			t.Cleanup(srv.Close)
			addr := strings.TrimPrefix(srv.URL, "http://")
			c := newRawConn(addr, 5*time.Second)
			t.Cleanup(c.close)
			for _, p := range []string{"abc", "def", "ghi", "jkl", "mno"} {
				r, err := c.do([]byte("GET /" + p + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"))
				if err != nil {
					t.Fatalf("GET /%s: %v", p, err)
				}
				if r.status != 200 || string(r.body) != p {
					t.Errorf("GET /%s = %d %q; want 200 %q", p, r.status, r.body, p)
				}
			}
			if c.dials != tt.wantDials {
				t.Errorf("%d connections for 5 requests; want %d", c.dials, tt.wantDials)
			}
		})
	}
}

// TestRawConnRedial: a kept connection the server closed while idle is
// dialled again, once, without an error.
func TestRawConnRedial(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			// Answer one request, then close without saying so.
			br := bufio.NewReader(conn)
			for {
				line, err := br.ReadString('\n')
				if err != nil || line == "\r\n" {
					break
				}
			}
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			conn.Close()
		}
	}()
	c := newRawConn(l.Addr().String(), 5*time.Second)
	t.Cleanup(c.close)
	req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	for i := range 3 {
		r, err := c.do(req)
		if err != nil || string(r.body) != "ok" {
			t.Fatalf("request %d: %q, %v; want \"ok\"", i, r.body, err)
		}
		time.Sleep(20 * time.Millisecond) // let the close arrive
	}
	if c.dials != 3 {
		t.Errorf("%d connections for 3 requests on one-shot connections; want 3", c.dials)
	}
}

func TestRevokedIndexes(t *testing.T) {
	tests := []struct {
		n    int
		pct  float64
		want []int
	}{
		{1000, 1, []int{50, 150, 250, 350, 450, 550, 650, 750, 850, 950}},
		{10, 20, []int{2, 7}},
		{100, 0, []int{}},
		{3, 100, []int{0, 1, 2}},
	}
	for _, tt := range tests {
		got := revokedIndexes(tt.n, tt.pct)
		if len(got) != len(tt.want) {
			t.Errorf("revokedIndexes(%d, %g) = %v; want %v", tt.n, tt.pct, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("revokedIndexes(%d, %g) = %v; want %v", tt.n, tt.pct, got, tt.want)
				break
			}
		}
	}
}
