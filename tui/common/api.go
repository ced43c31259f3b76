package common

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/gwpki/gwpki/ca"
	gwclaim "github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/internal/apiclient"
	"github.com/gwpki/gwpki/internal/audit"
)

// RequestTimeout bounds one request of a screen.
const RequestTimeout = 15 * time.Second

// Devices asks for one page of the fleet (GET /v1/devices).
func Devices(ctx context.Context, c *apiclient.Client, q gwclaim.DeviceQuery) (gwclaim.DevicePage, error) {
	var p gwclaim.DevicePage
	path := "/v1/devices"
	if enc := q.Encode(); enc != "" {
		path += "?" + enc
	}
	err := c.Do(ctx, http.MethodGet, path, nil, &p)
	return p, err
}

// Detail asks for a gateway's detail page (GET /v1/devices/{serial}/detail).
func Detail(ctx context.Context, c *apiclient.Client, serial string) (gwclaim.DeviceDetail, error) {
	var d gwclaim.DeviceDetail
	err := c.Do(ctx, http.MethodGet, "/v1/devices/"+url.PathEscape(serial)+"/detail", nil, &d)
	return d, err
}

// Revoke revokes every certificate of a gateway with reason.
func Revoke(ctx context.Context, c *apiclient.Client, serial, reason string) (ca.RevokeResponse, error) {
	var r ca.RevokeResponse
	err := c.Do(ctx, http.MethodPost, "/v1/devices/"+url.PathEscape(serial)+"/revoke", ca.RevokeRequest{Reason: reason}, &r)
	return r, err
}

// Unclaim releases a gateway from its organisation.
func Unclaim(ctx context.Context, c *apiclient.Client, serial string) (gwclaim.UnclaimAnswer, error) {
	var a gwclaim.UnclaimAnswer
	err := c.Do(ctx, http.MethodPost, "/v1/devices/"+url.PathEscape(serial)+"/unclaim", nil, &a)
	return a, err
}

// Unlock clears a gateway's claim attempt lock.
func Unlock(ctx context.Context, c *apiclient.Client, serial string) (gwclaim.UnlockResult, error) {
	var r gwclaim.UnlockResult
	err := c.Do(ctx, http.MethodPost, "/v1/devices/"+url.PathEscape(serial)+"/unlock", nil, &r)
	return r, err
}

// Audit asks for one page of the audit log (GET /v1/audit).
func Audit(ctx context.Context, c *apiclient.Client, q audit.Query) (audit.Page, error) {
	var p audit.Page
	path := "/v1/audit"
	if enc := q.Encode(); enc != "" {
		path += "?" + enc
	}
	err := c.Do(ctx, http.MethodGet, path, nil, &p)
	return p, err
}
