package ocsp

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"

	xocsp "golang.org/x/crypto/ocsp"
)

// Header values shared by every response; net/http only reads them.
var (
	hdrOCSPResponse = []string{"application/ocsp-response"}
	hdrNoStore      = []string{"no-store"}
	hdrErrorLength  = []string{"5"} // every OCSP error response is 5 bytes
)

// errorResponses are the DER of the unsigned error answers.
var errorResponses = [numOutcomes][]byte{
	outMalformed:     xocsp.MalformedRequestErrorResponse,
	outUnauthorized:  xocsp.UnauthorizedErrorResponse,
	outTryLater:      xocsp.TryLaterErrorResponse,
	outInternalError: xocsp.InternalErrorErrorResponse,
}

// buffers hold one request while it is decoded; they are pooled so that a
// request allocates none.
type buffers struct {
	req  certRequest
	text [MaxPath]byte
	der  [MaxPath * 3 / 4]byte // room for any path that fits in text
}

// ServeHTTP answers OCSP requests: POST with the DER request as the body,
// and GET (or HEAD) with its base64 after the mount point (/ocsp/<base64>,
// or /<base64> behind http.StripPrefix). The base64 may be standard or
// URL-safe, padded or not, and percent-encoded once or twice.
//
// Every OCSP answer, error statuses included, is HTTP 200 with Content-Type
// application/ocsp-response. Good, revoked and unknown answers carry
// Cache-Control (max-age until nextUpdate), ETag, Last-Modified (thisUpdate)
// and Expires (nextUpdate), and a GET with a matching If-None-Match gets
// 304. Error answers carry Cache-Control: no-store. Outside OCSP: 405 for
// other methods, 413 for a body over [MaxRequest] bytes, 414 for a path
// over [MaxPath]. A request for several certificates is answered for the
// first (as x/crypto/ocsp reads it; RFC 5019 clients send one); a signed
// request, or a CertID hashed with other than SHA-1, SHA-256, SHA-384 or
// SHA-512, is refused as malformed; request nonces are ignored (responses
// are pre-signed, RFC 5019).
func (r *Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	buf := r.bufs.Get().(*buffers)
	defer r.bufs.Put(buf)
	var der []byte
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		if len(req.URL.Path) > MaxPath {
			http.Error(w, "OCSP request path too long", http.StatusRequestURITooLong)
			return
		}
		der = decodePath(buf, req.URL.Path)
	case http.MethodPost:
		var status int
		if der, status = readBody(buf, req); status != 0 {
			http.Error(w, "OCSP request too large", status)
			return
		}
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "OCSP requests are GET or POST", http.StatusMethodNotAllowed)
		return
	}
	if len(der) == 0 {
		r.writeError(w, outMalformed)
		return
	}
	if !parseRequest(der, &buf.req) {
		r.writeError(w, outMalformed)
		return
	}
	now := r.now()
	e, o := r.answer(req.Context(), &buf.req, now)
	if e == nil {
		r.writeError(w, o)
		return
	}
	r.metrics.count(o)
	h := w.Header()
	h["Cache-Control"] = e.cacheControl(now)
	h["Etag"] = e.etagHdr
	h["Last-Modified"] = e.lastModified
	h["Expires"] = e.expires
	if req.Method != http.MethodPost {
		if inm := req.Header["If-None-Match"]; len(inm) > 0 && etagMatches(inm, e.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	h["Content-Type"] = hdrOCSPResponse
	h["Content-Length"] = e.contentLength
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		_, _ = w.Write(e.der)
	}
}

// writeError sends an unsigned OCSP error answer.
func (r *Responder) writeError(w http.ResponseWriter, o outcome) {
	r.metrics.count(o)
	h := w.Header()
	h["Content-Type"] = hdrOCSPResponse
	h["Cache-Control"] = hdrNoStore
	h["Content-Length"] = hdrErrorLength
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(errorResponses[o])
}

// readBody reads a POST body of at most MaxRequest bytes into buf, or
// returns the HTTP status to refuse it with. A body cut short yields
// what arrived, which then fails to parse.
func readBody(buf *buffers, req *http.Request) ([]byte, int) {
	if req.ContentLength > MaxRequest {
		return nil, http.StatusRequestEntityTooLarge
	}
	b := buf.der[:MaxRequest+1]
	n := 0
	for n < len(b) {
		m, err := req.Body.Read(b[n:])
		n += m
		if err != nil {
			if err != io.EOF {
				return nil, 0
			}
			break
		}
	}
	if n > MaxRequest {
		return nil, http.StatusRequestEntityTooLarge
	}
	return b[:n], 0
}

// decodePath returns the DER request in a GET path, or nil. The path is
// already percent-decoded once by net/http; what follows the mount point
// is taken whole, since base64 may contain '/'.
func decodePath(buf *buffers, path string) []byte {
	if rest, ok := strings.CutPrefix(path, "/ocsp"); ok && (rest == "" || rest[0] == '/') {
		path = rest
	}
	path = strings.TrimLeft(path, "/")
	if strings.IndexByte(path, '%') >= 0 { // percent-encoded twice
		p, err := url.PathUnescape(path)
		if err != nil {
			return nil
		}
		path = p
	}
	path = strings.TrimRight(path, "=")
	if len(path) > len(buf.text) {
		return nil
	}
	// One pass maps the URL-safe alphabet to the standard one and a '+'
	// that a form decoder turned into a space back to '+'.
	t := buf.text[:len(path)]
	for i := 0; i < len(path); i++ {
		switch c := path[i]; c {
		case '-', ' ':
			t[i] = '+'
		case '_':
			t[i] = '/'
		default:
			t[i] = c
		}
	}
	n, err := base64.RawStdEncoding.Decode(buf.der[:], t)
	if err != nil || n > MaxRequest {
		return nil
	}
	return buf.der[:n]
}

// etagMatches reports whether an If-None-Match header names etag, with
// the weak comparison RFC 9110 asks for.
func etagMatches(values []string, etag string) bool {
	for _, v := range values {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == etag {
				return true
			}
		}
	}
	return false
}
