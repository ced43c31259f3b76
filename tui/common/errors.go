package common

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"

	"github.com/gwpki/gwpki/internal/apiclient"
)

// ErrorLine turns an error of the API client into one line for the screen,
// saying what to do where that is known. doing says what failed ("log in").
func ErrorLine(doing string, err error) string {
	var apiErr *apiclient.Error
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	switch {
	case errors.Is(err, apiclient.ErrNotLoggedIn), errors.Is(err, apiclient.ErrSessionExpired):
		return doing + ": the session has ended; log in again"
	case errors.As(err, &apiErr):
		switch {
		case apiErr.Status == http.StatusUnauthorized && doing == "log in":
			return "log in: wrong username or password"
		case apiErr.Status == http.StatusUnauthorized:
			return doing + ": the session has ended; log in again (ctrl+o)"
		case apiErr.Status == http.StatusForbidden && apiErr.Hint == "":
			return doing + ": " + apiErr.Message + "; log in as a user with that role"
		}
		return join(doing+": "+apiErr.Message, apiErr.Hint)
	case errors.As(err, &unknownCA):
		return doing + ": the server's certificate is not signed by this root; check the root CA path"
	case errors.As(err, &hostErr):
		return doing + ": the server's certificate is not for this host name; use a name it carries"
	case errors.Is(err, syscall.ECONNREFUSED):
		return doing + ": connection refused: is gwpki serve running there?"
	}
	return fmt.Sprintf("%s: %v", doing, err)
}

func join(msg, hint string) string {
	if hint == "" {
		return msg
	}
	return strings.TrimRight(msg, ".") + " (" + hint + ")"
}
