package main

import (
	"encoding/json"
	"errors"
	"os"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/spf13/cobra"

	"github.com/gwpki/gwpki/internal/apiclient"
	"github.com/gwpki/gwpki/tui"
	"github.com/gwpki/gwpki/tui/pages/login"
)

func newTUICommand() *cobra.Command {
	var server, root string
	cmd := &cobra.Command{
		Use:   "tui [--server URL] [--root ROOT.pem]",
		Short: "Open the terminal UI: log in and claim gateways",
		Long: "Open gwpki's terminal UI. A valid saved session (from gwpki login or an earlier tui login) skips the\n" +
			"login screen; otherwise the login screen is prefilled from the saved session and from --server and --root.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := tuiOptions(server, root, cmd.Flags().Changed("server"))
			p := tea.NewProgram(tui.New(opts), tea.WithAltScreen(), tea.WithContext(cmd.Context()))
			_, err := p.Run()
			if errors.Is(err, tea.ErrProgramKilled) && cmd.Context().Err() != nil {
				return nil
			}
			return err
		},
	}
	cmd.Flags().StringVar(&server, "server", loginDefaultServer, "URL of the gwpki API")
	cmd.Flags().StringVar(&root, "root", "", "root CA certificate (PEM) to trust for the server (default: the saved session's, or ./"+loginDefaultRoot+" if present)")
	return cmd
}

// tuiOptions prefills the login screen from the flags and the saved session,
// and hands over the saved session when it is valid and for the server asked
// for.
func tuiOptions(server, root string, serverGiven bool) tui.Options {
	d := login.Defaults{Server: server, RootPath: root}
	c, err := apiclient.Load()
	if err == nil && (!serverGiven || c.Session().Server == server) {
		return tui.Options{Client: c, Login: d}
	}
	// Prefill from the session file even when expired.
	if path, perr := apiclient.SessionPath(); perr == nil {
		if data, rerr := os.ReadFile(path); rerr == nil {
			var s apiclient.Session
			if json.Unmarshal(data, &s) == nil {
				if !serverGiven && s.Server != "" {
					d.Server = s.Server
				}
				if d.Server == s.Server {
					d.Username = s.Username
					if root == "" {
						d.RootPEM = []byte(s.RootPEM)
					}
				}
			}
		}
	}
	if d.RootPath == "" && len(d.RootPEM) == 0 {
		if _, err := os.Stat(loginDefaultRoot); err == nil {
			d.RootPath = loginDefaultRoot
		}
	}
	switch {
	case errors.Is(err, apiclient.ErrSessionExpired):
		d.Notice = "your session has expired; log in again"
	case err != nil && !errors.Is(err, apiclient.ErrNotLoggedIn):
		d.Notice = err.Error()
	}
	return tui.Options{Login: d}
}
