package common

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"syscall"
	"testing"

	"github.com/gwpki/gwpki/internal/apiclient"
)

// TestTUIErrorLine: the login errors people meet are one clear line.
func TestTUIErrorLine(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&apiclient.Error{Status: 401, Message: "invalid username or password"}, "log in: wrong username or password"},
		{fmt.Errorf("reach https://x: %w", fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED)), "log in: connection refused: is gwpki serve running there?"},
		{fmt.Errorf("reach https://x: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}),
			"log in: the server's certificate is not signed by this root; check the root CA path"},
		{fmt.Errorf("load session: %w", apiclient.ErrSessionExpired), "log in: the session has ended; log in again"},
	} {
		if got := ErrorLine("log in", tc.err); got != tc.want {
			t.Errorf("ErrorLine(%v) = %q; want %q", tc.err, got, tc.want)
		}
	}
}
