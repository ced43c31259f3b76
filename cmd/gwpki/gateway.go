package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/provisioning"
)

func newGatewayCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "The device side: what a gateway provisioned by gwpki provision does",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newGatewayCodeCommand())
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
	b, secret, err := readGatewayBundle(o.bundle)
	if err != nil {
		return err
	}
	code := claim.DisplayCode(secret, b.Serial, now)
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
func readGatewayBundle(dir string) (*provisioning.Bundle, []byte, error) {
	data, err := os.ReadFile(filepath.Join(dir, provisioning.GatewayFile))
	if err != nil {
		return nil, nil, withHint(fmt.Errorf("read bundle: %w", err), "--bundle is a folder gwpki provision wrote, OUT/<serial>")
	}
	var b provisioning.Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, nil, fmt.Errorf("read bundle %s: %s is not a gwpki gateway file: %w", dir, provisioning.GatewayFile, err)
	}
	secret, err := base64.RawURLEncoding.DecodeString(b.ClaimSecret)
	if err != nil || len(secret) < 16 || b.Serial == "" {
		return nil, nil, fmt.Errorf("read bundle %s: %s has no serial or no valid claim secret", dir, provisioning.GatewayFile)
	}
	return &b, secret, nil
}
