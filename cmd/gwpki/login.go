package main

import (
	"bufio"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/gwpki/gwpki/internal/apiclient"
)

const (
	loginDefaultServer = "https://localhost:8443"
	// loginDefaultRoot is where `gwpki init` puts the root certificate in
	// the default data directory, so a login on the server's own machine
	// needs no --root.
	loginDefaultRoot = "gwpki-data/certs/root_ca.crt"
	// loginMaxPassword caps what is read as a password; the server refuses
	// more than 1024 bytes anyway.
	loginMaxPassword = 4096
)

type loginOptions struct {
	server       string
	root         string
	user         string
	passwordFile string
}

func (o *loginOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.server, "server", loginDefaultServer, "URL of the gwpki API")
	fs.StringVar(&o.root, "root", "", "root CA certificate (PEM) to trust for the server (default ./"+loginDefaultRoot+" if present)")
	fs.StringVar(&o.user, "user", "", "username")
	fs.StringVar(&o.passwordFile, "password-file", "", "read the password from the first line of this file (default: prompt, or the first line of stdin)")
}

func newLoginCommand() *cobra.Command {
	o := &loginOptions{}
	cmd := &cobra.Command{
		Use:   "login --server URL --root ROOT.pem --user U [--password-file F]",
		Short: "Log in to a gwpki server and save the session for later commands",
		Long: `Log in to a gwpki server with a username and password. The session (server URL,
pinned root CA, username and bearer token) is saved with mode 0600 in the user's
configuration directory, or in $GWPKI_CONFIG_DIR when set.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func (o *loginOptions) run(cmd *cobra.Command) error {
	if o.user == "" {
		return withHint(errors.New("no username given"), "pass --user NAME")
	}
	rootPath := o.root
	if rootPath == "" {
		if _, err := os.Stat(loginDefaultRoot); err != nil {
			return withHint(errors.New("no root CA certificate given"),
				"pass --root ROOT.pem (certs/root_ca.crt in the server's data directory)")
		}
		rootPath = loginDefaultRoot
	}
	rootPEM, err := os.ReadFile(rootPath)
	if err != nil {
		return withHint(fmt.Errorf("read root CA: %w", err), "pass --root ROOT.pem (certs/root_ca.crt in the server's data directory)")
	}
	password, err := loginReadPassword(cmd, o.passwordFile, o.user)
	if err != nil {
		return err
	}
	c, err := apiclient.Login(cmd.Context(), o.server, rootPEM, o.user, password)
	if err != nil {
		return apiclientError("log in", err)
	}
	s := c.Session()
	fmt.Fprintf(cmd.ErrOrStderr(), "logged in as %s (%s) on %s; session saved to %s\n", s.Username, s.Role, s.Server, c.Path())
	return nil
}

// loginReadPassword reads a password: the first line of file when given;
// else from the terminal without echo when stdin is one; else the first line
// of stdin, so scripts can pipe it in.
func loginReadPassword(cmd *cobra.Command, file, user string) (string, error) {
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("read password file: %w", err)
		}
		defer f.Close()
		pw, err := loginFirstLine(f)
		if err != nil {
			return "", fmt.Errorf("read password file %s: %w", file, err)
		}
		return pw, nil
	}
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(cmd.ErrOrStderr(), "password for %s: ", user)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if len(b) == 0 {
			return "", errors.New("read password: empty password")
		}
		return string(b), nil
	}
	pw, err := loginFirstLine(in)
	if err != nil {
		return "", withHint(fmt.Errorf("read password from stdin: %w", err), "pass --password-file F, or run on a terminal to be prompted")
	}
	return pw, nil
}

// loginFirstLine returns the first line of r without its line ending.
func loginFirstLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, loginMaxPassword)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty password")
	}
	return line, nil
}

// apiclientError turns an error of the API client into one line for the
// user, with a hint where the fix is known. doing says what failed ("log
// in", "list users").
func apiclientError(doing string, err error) error {
	var apiErr *apiclient.Error
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	switch {
	case errors.Is(err, apiclient.ErrNotLoggedIn):
		return withHint(errors.New("not logged in"), "run gwpki login --server URL --user NAME")
	case errors.Is(err, apiclient.ErrSessionExpired):
		return withHint(fmt.Errorf("%s: %w", doing, err), "run gwpki login again")
	case errors.As(err, &apiErr):
		hint := apiErr.Hint
		switch apiErr.Status {
		case http.StatusUnauthorized:
			if doing != "log in" {
				hint = "run gwpki login again"
			}
		case http.StatusForbidden:
			if hint == "" {
				hint = "log in as a user with that role"
			}
		}
		return withHint(fmt.Errorf("%s: %s", doing, apiErr.Message), hint)
	case errors.As(err, &unknownCA):
		return withHint(fmt.Errorf("%s: the server's certificate is not signed by the pinned root CA", doing),
			"check --root: it must be the root_ca.crt of this server")
	case errors.As(err, &hostErr):
		return withHint(fmt.Errorf("%s: %w", doing, err), "use a server name that the server's certificate carries (gwpki init --hostname)")
	case errors.Is(err, syscall.ECONNREFUSED):
		return withHint(fmt.Errorf("%s: %w", doing, err), "is gwpki serve running there?")
	}
	return fmt.Errorf("%s: %w", doing, err)
}
