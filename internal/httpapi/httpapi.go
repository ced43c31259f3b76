// Package httpapi holds the JSON plumbing shared by gwpki's /v1 handlers:
// bounded request decoding and errors of the form {"error": ..., "hint": ...}
// whose public message never carries the internal cause.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// MaxBody is the largest JSON request body any /v1 handler accepts.
const MaxBody = 64 << 10

// Error is an error with the HTTP status and the public message a client may
// see; Err is the cause, which only reaches the log.
type Error struct {
	Status int
	Msg    string
	Hint   string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with status and a public message.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// WithHint returns e with a hint for the client.
func (e *Error) WithHint(hint string) *Error {
	e.Hint = hint
	return e
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError answers with err. An *Error is shown as its public message; any
// other error is logged and answered as a 500 without detail.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Msg: "internal error", Err: err}
	}
	if e.Status >= 500 {
		slog.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	body := struct {
		Error string `json:"error"`
		Hint  string `json:"hint,omitempty"`
	}{e.Msg, e.Hint}
	WriteJSON(w, e.Status, body)
}

// DecodeJSON reads one JSON object of at most MaxBody bytes into v, refusing
// unknown fields and trailing data.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return Errorf(http.StatusUnsupportedMediaType, "content type must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return Errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", MaxBody)
		}
		return &Error{Status: http.StatusBadRequest, Msg: "malformed JSON request: " + publicJSONError(err), Err: err}
	}
	if dec.More() {
		return Errorf(http.StatusBadRequest, "malformed JSON request: trailing data after the object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return Errorf(http.StatusBadRequest, "malformed JSON request: trailing data after the object")
	}
	return nil
}

// publicJSONError describes a decode error without echoing the input.
func publicJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type", typ.Field)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "empty or truncated body"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	default:
		return "not a JSON object"
	}
}
