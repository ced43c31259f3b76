package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/spf13/cobra"

	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/gateway"
)

func newGatewayCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "The device side: what a gateway provisioned by gwpki provision does",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newGatewayRunCommand(), newGatewaySimCommand(), newGatewayCodeCommand(), newGatewayButtonCommand())
	return cmd
}

type gatewayCodeOptions struct {
	bundle string
	json   bool
}

func newGatewayCodeCommand() *cobra.Command {
	o := &gatewayCodeOptions{}
	cmd := &cobra.Command{
		Use:   "code --bundle OUT/<serial>",
		Short: "Print the gateway's current display code, the one its console shows while it is unclaimed",
		Long: "Print the gateway's current display code: 8 symbols and a check symbol, XXXX-XXXX-C, computed from the\n" +
			"claim secret in its bundle's gateway.json, its serial and the current 5-minute window. An installer standing\n" +
			"at the gateway types it into gwpki claim or gwpki tui; the server accepts it in this window and the next.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd, time.Now()) },
	}
	cmd.Flags().StringVar(&o.bundle, "bundle", "", "the gateway's bundle directory, OUT/<serial> from gwpki provision (required)")
	cmd.Flags().BoolVar(&o.json, "json", false, `print {"serial","code","valid_until"} as JSON`)
	return cmd
}

func (o *gatewayCodeOptions) run(cmd *cobra.Command, now time.Time) error {
	if o.bundle == "" {
		return withHint(errors.New("no bundle given"), "pass --bundle OUT/<serial> (a folder gwpki provision wrote)")
	}
	b, err := readGatewayBundle(o.bundle)
	if err != nil {
		return err
	}
	code := b.DisplayCode(now)
	// The code changes at the end of its window; the server takes it for
	// one window more.
	window := now.Truncate(claim.DisplayWindow)
	validUntil := window.Add(2 * claim.DisplayWindow).UTC()
	if o.json {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{
			"serial": b.Serial, "code": code, "valid_until": validUntil,
		})
	}
	fmt.Fprintln(cmd.OutOrStdout(), code)
	fmt.Fprintf(cmd.ErrOrStderr(), "display code of %s, valid until %s\n", b.Serial, validUntil.Format(time.RFC3339))
	return nil
}

// readGatewayBundle reads a bundle's gateway.json and its claim secret.
func readGatewayBundle(dir string) (*gateway.Bundle, error) {
	b, err := gateway.LoadBundle(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, withHint(err, "--bundle is a folder gwpki provision wrote, OUT/<serial>")
	}
	return b, err
}

type gatewayButtonOptions struct {
	bundle string
	json   bool
}

func newGatewayButtonCommand() *cobra.Command {
	o := &gatewayButtonOptions{}
	cmd := &cobra.Command{
		Use:   "button --bundle OUT/<serial>",
		Short: "Press the gateway's claim button: lift its claim lock, reported over its own mutual TLS connection",
		Long: "Report a press of the gateway's claim button to the server, authenticated by the gateway's own certificate\n" +
			"(idevid.crt and idevid.key of its bundle). Whoever presses it stands at the gateway, so the server clears the\n" +
			"gateway's claim lock and back-off after failed attempts, as an operator's gwpki unlock would.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.bundle == "" {
				return withHint(errors.New("no bundle given"), "pass --bundle OUT/<serial> (a folder gwpki provision wrote)")
			}
			b, err := readGatewayBundle(o.bundle)
			if err != nil {
				return err
			}
			res, err := b.PressClaimButton(cmd.Context())
			if err != nil {
				return err
			}
			if o.json {
				return writeJSON(cmd, res)
			}
			fmt.Fprintln(cmd.OutOrStdout(), unlockSummary(res))
			return nil
		},
	}
	cmd.Flags().StringVar(&o.bundle, "bundle", "", "the gateway's bundle directory, OUT/<serial> from gwpki provision (required)")
	cmd.Flags().BoolVar(&o.json, "json", false, "print the result as JSON")
	return cmd
}
