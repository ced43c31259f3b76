package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/internal/apiclient"
)

func newUserCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage user accounts on the server (admin session)",
	}
	cmd.AddCommand(
		newUserAddCommand(),
		newUserListCommand(),
		newUserSetDisabledCommand(true),
		newUserSetDisabledCommand(false),
	)
	return cmd
}

// userExactlyOne accepts exactly one positional argument, the username.
func userExactlyOne(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return withHint(fmt.Errorf("%s takes exactly one username, got %d arguments", cmd.CommandPath(), len(args)),
			"usage: "+cmd.UseLine())
	}
	return nil
}

type userAddOptions struct {
	org          string
	role         string
	passwordFile string
}

func (o *userAddOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.org, "org", "", "organisation of the user (created if new)")
	fs.StringVar(&o.role, "role", "", "installer, operator or admin")
	fs.StringVar(&o.passwordFile, "password-file", "", "read the password from the first line of this file (default: generate one and print it once)")
}

func newUserAddCommand() *cobra.Command {
	o := &userAddOptions{}
	cmd := &cobra.Command{
		Use:   "add USERNAME --org ORG --role installer|operator|admin [--password-file F]",
		Short: "Create a user; without --password-file a password is generated and printed once on stdout",
		Args:  userExactlyOne,
		RunE:  func(cmd *cobra.Command, args []string) error { return o.run(cmd, args[0]) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func (o *userAddOptions) run(cmd *cobra.Command, username string) error {
	if o.org == "" {
		return withHint(errors.New("no organisation given"), "pass --org ORG")
	}
	// Checked here too, so a typo fails before the password is read.
	if _, err := claim.ParseRole(o.role); err != nil {
		return withHint(fmt.Errorf("invalid role %q", o.role), "pass --role installer, operator or admin")
	}
	c, err := apiclient.Load()
	if err != nil {
		return apiclientError("add user", err)
	}
	var password string
	generated := o.passwordFile == ""
	if generated {
		if password, err = claim.GeneratePassword(); err != nil {
			return err
		}
	} else if password, err = loginReadPassword(cmd, o.passwordFile, username); err != nil {
		return err
	}
	req := map[string]string{"username": username, "org": o.org, "role": o.role, "password": password}
	var u apiclient.User
	if err := c.Do(cmd.Context(), http.MethodPost, "/v1/users", req, &u); err != nil {
		return apiclientError("add user", err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "created user %s (%s) in organisation %s\n", u.Username, u.Role, u.Org)
	if generated {
		fmt.Fprintf(cmd.ErrOrStderr(), "password for %s (shown only this once):\n", u.Username)
		fmt.Fprintln(cmd.OutOrStdout(), password)
	}
	return nil
}

type userListOptions struct {
	json bool
}

func (o *userListOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.json, "json", false, "print the users as a JSON array")
}

func newUserListCommand() *cobra.Command {
	o := &userListOptions{}
	cmd := &cobra.Command{
		Use:     "ls [--json]",
		Aliases: []string{"list"},
		Short:   "List users",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func (o *userListOptions) run(cmd *cobra.Command) error {
	c, err := apiclient.Load()
	if err != nil {
		return apiclientError("list users", err)
	}
	var users []apiclient.User
	if err := c.Do(cmd.Context(), http.MethodGet, "/v1/users", nil, &users); err != nil {
		return apiclientError("list users", err)
	}
	out := cmd.OutOrStdout()
	if o.json {
		if users == nil {
			users = []apiclient.User{}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(users)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tORG\tROLE\tSTATUS\tCREATED")
	for _, u := range users {
		status := "active"
		if u.Disabled {
			status = "disabled"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Username, u.Org, u.Role, status, u.CreatedAt.Local().Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}

// newUserSetDisabledCommand builds `user disable` (disabled true) or `user
// enable`.
func newUserSetDisabledCommand(disabled bool) *cobra.Command {
	verb, short := "enable", "Re-enable a disabled user"
	if disabled {
		verb, short = "disable", "Disable a user and end their sessions"
	}
	return &cobra.Command{
		Use:   verb + " USERNAME",
		Short: short,
		Args:  userExactlyOne,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiclient.Load()
			if err != nil {
				return apiclientError(verb+" user", err)
			}
			var u apiclient.User
			req := map[string]bool{"disabled": disabled}
			if err := c.Do(cmd.Context(), http.MethodPatch, "/v1/users/"+url.PathEscape(args[0]), req, &u); err != nil {
				return apiclientError(verb+" user", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%sd user %s\n", verb, u.Username)
			return nil
		},
	}
}
