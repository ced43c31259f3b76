// Package apiclient is the HTTP client of gwpki's /v1 API that the CLI and
// the TUI use. A login saves a session file in the user's configuration
// directory holding the server URL, the pinned root CA, the username and the
// bearer token; later commands load it and send the token.
//
// TLS trusts only the pinned root (never the system pool) and needs TLS 1.2
// or newer. Error answers of the form {"error","hint"} become [*Error].
package apiclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxResponse bounds how much of an answer the client reads.
const maxResponse = 64 << 20

// Error is an error answer from the server.
type Error struct {
	Status  int    // HTTP status code
	Message string // the server's public message
	Hint    string // what to do about it, when the server knows
	// Body is the answer as sent (at most maxErrorBody bytes), for the
	// fields some routes add to an error, such as a claim's attempts left.
	Body []byte
	// RetryAfter is the Retry-After header, "" when absent.
	RetryAfter string
}

// maxErrorBody bounds Error.Body.
const maxErrorBody = 16 << 10

func (e *Error) Error() string {
	return e.Message
}

// User is an account as the server reports it.
type User struct {
	Username  string    `json:"username"`
	Org       string    `json:"org"`
	Role      string    `json:"role"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

// Client talks to one gwpki server as one logged-in user. Its methods are
// safe for concurrent use.
type Client struct {
	session Session
	path    string
	http    *http.Client
}

// Login logs in to server (an https URL) trusting only the root CA in
// rootPEM, and saves the session to [SessionPath] for later commands.
func Login(ctx context.Context, server string, rootPEM []byte, username, password string) (*Client, error) {
	path, err := SessionPath()
	if err != nil {
		return nil, err
	}
	c, err := Open(ctx, server, rootPEM, username, password)
	if err != nil {
		return nil, err
	}
	if err := saveSession(path, c.session); err != nil {
		return nil, err
	}
	c.path = path
	return c, nil
}

// Open logs in like [Login] but keeps the session in memory only, so a
// program that acts as several users (gwpki demo) leaves the saved session
// alone. Its Logout removes no file.
func Open(ctx context.Context, server string, rootPEM []byte, username, password string) (*Client, error) {
	server, err := normaliseServer(server)
	if err != nil {
		return nil, err
	}
	c, err := newClient(Session{Server: server, RootPEM: string(rootPEM), Username: username}, "")
	if err != nil {
		return nil, err
	}
	var resp struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
		User      User      `json:"user"`
	}
	req := struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}{username, password}
	if err := c.Do(ctx, http.MethodPost, "/v1/login", req, &resp); err != nil {
		return nil, err
	}
	if resp.Token == "" {
		return nil, errors.New("log in: the server answered without a token")
	}
	c.session.Token = resp.Token
	c.session.ExpiresAt = resp.ExpiresAt
	c.session.Role = resp.User.Role
	c.session.Org = resp.User.Org
	return c, nil
}

// Load returns a client for the saved session. It returns an error wrapping
// [ErrNotLoggedIn] when there is none and [ErrSessionExpired] when it has
// expired.
func Load() (*Client, error) {
	path, err := SessionPath()
	if err != nil {
		return nil, err
	}
	s, err := loadSession(path)
	if err != nil {
		return nil, err
	}
	if !time.Now().Before(s.ExpiresAt) {
		return nil, fmt.Errorf("load session: %w (at %s)", ErrSessionExpired, s.ExpiresAt.Local().Format(time.RFC3339))
	}
	return newClient(s, path)
}

func newClient(s Session, path string) (*Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(s.RootPEM)) {
		return nil, errors.New("read root CA: no PEM certificate found")
	}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		TLSClientConfig: &tls.Config{
			// Only the gwpki root: the system pool is never consulted.
			RootCAs:    pool,
			MinVersion: tls.VersionTLS12,
		},
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Client{
		session: s,
		path:    path,
		http:    &http.Client{Transport: tr, Timeout: 60 * time.Second},
	}, nil
}

// Session returns the client's session.
func (c *Client) Session() Session { return c.session }

// Path returns the session file of the client.
func (c *Client) Path() string { return c.path }

// Do sends a request to path (such as "/v1/users") with in as its JSON body
// (none if nil) and the session's bearer token, and decodes a successful
// answer into out (ignored if nil). An error answer is returned as *Error.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.session.Server+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.session.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.session.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// url.Error repeats method and URL; say it once, keep the cause.
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return fmt.Errorf("reach %s: %w", c.session.Server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("read answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := decodeError(resp.StatusCode, data)
		e.RetryAfter = resp.Header.Get("Retry-After")
		return e
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer to %s %s: %w", method, path, err)
	}
	return nil
}

// Download sends a GET for path with the session's bearer token and copies
// a successful answer's body to w as it arrives, returning the number of
// bytes copied. Unlike [Client.Do] it reads no more into memory than a copy
// buffer, and it has no overall time limit (the answer may be large): ctx
// bounds it. An error answer is returned as *Error and nothing is written.
func (c *Client) Download(ctx context.Context, path string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.session.Server+path, nil)
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	if c.session.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.session.Token)
	}
	hc := *c.http
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return 0, fmt.Errorf("reach %s: %w", c.session.Server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		e := decodeError(resp.StatusCode, data)
		e.RetryAfter = resp.Header.Get("Retry-After")
		return 0, e
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("download %s: %w", path, err)
	}
	return n, nil
}

// Logout ends the session on the server and removes the session file. The
// file is removed even if the server cannot be reached or the session had
// already ended there.
func (c *Client) Logout(ctx context.Context) error {
	err := c.Do(ctx, http.MethodPost, "/v1/logout", nil, nil)
	var apiErr *Error
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized {
		err = nil
	}
	if c.path == "" {
		return err
	}
	if rmErr := removeSession(c.path); rmErr != nil {
		return errors.Join(err, rmErr)
	}
	return err
}

func decodeError(status int, data []byte) *Error {
	var body struct {
		Error string `json:"error"`
		Hint  string `json:"hint"`
	}
	e := &Error{Status: status, Body: bytes.Clone(data[:min(len(data), maxErrorBody)])}
	if json.Unmarshal(data, &body) == nil && body.Error != "" {
		e.Message, e.Hint = body.Error, body.Hint
	} else {
		// Not one of ours (a proxy, or a route outside /v1).
		e.Message = strings.ToLower(http.StatusText(status))
		if e.Message == "" {
			e.Message = fmt.Sprintf("http status %d", status)
		}
	}
	return e
}

// normaliseServer checks that server is an https URL and drops a trailing
// slash, so that paths can be appended.
func normaliseServer(server string) (string, error) {
	u, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("parse server URL: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("server URL %q: want https://host[:port]", server)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("server URL %q: want no query or fragment", server)
	}
	return strings.TrimRight(u.String(), "/"), nil
}
