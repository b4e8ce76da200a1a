// Package tailnet keeps tailscaled logged in to headscale as a subnet router for the VPC. It is
// the only package of headnat that imports tailscale.com.
package tailnet

import "tailscale.com/client/local"

var _ = local.Client{}
