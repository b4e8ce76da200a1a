package policy

import (
	"encoding/json"
	"strconv"
	"strings"
)

// render writes the policy for v. Plain Go, not text/template: a template's reflection makes
// the linker keep every exported method of the binary's types (the agent's binary grew from
// 27 to 79 MB with it, and its resident memory with it).
func render(v view) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	list := func(ss []string) string {
		if ss == nil {
			return "null"
		}
		b, _ := json.Marshal(ss)
		return string(b)
	}
	var b strings.Builder
	b.WriteString(`// headscale ACL policy for headnat (policy v2, HuJSON). Rendered by policy.Render; do not edit
// the rendered file by hand. Nothing is open unless a rule below says so.
{
	"groups": {
		// The people who reach the VPC over the tailnet.
		` + q(v.AdminGroup) + `: ` + list(v.Admins) + `
	},
	"tagOwners": {
		// Who may give a node the NAT tag (pre-auth keys made by the headscale admin carry it).
		` + q(v.NATTag) + `: ` + list(v.TagOwners) + `
	},
	"acls": [
		// Admins reach every port of the VPC (and the extra routes) through the NAT instances.
		{"action": "accept", "src": [` + q(v.AdminGroup) + `], "dst": ` + list(v.RouteDsts) + `},
		// Admins reach the NAT agents' port (/healthz, /status, /metrics) over the tailnet.
		{"action": "accept", "src": [` + q(v.AdminGroup) + `], "dst": [` + q(v.AgentDst) + `]},
		// The NAT agents probe each other over the tailnet.
		{"action": "accept", "src": [` + q(v.NATTag) + `], "dst": [` + q(v.AgentDst) + `]},`)
	if v.SSH {
		b.WriteString(`
		// Admins reach the NAT instances' tailscale SSH (see "ssh" below), nobody else.
		{"action": "accept", "src": [` + q(v.AdminGroup) + `], "dst": [` + q(v.NATTag+":22") + `]},`)
	}
	b.WriteString(`
		// One rule per route, inert on the data plane (traffic within a VPC route never crosses
		// the tailnet). headscale sends a router only the rules that touch its approved routes,
		// so these put every approved route into the NAT's packet filter, admins or not: that
		// is how the agent sees its routes are approved.`)
	for i, r := range v.Routes {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n\t\t{\"action\": \"accept\", \"src\": [" + q(r) + "], \"dst\": [" + q(r+":"+strconv.Itoa(v.AgentPort)) + "]}")
	}
	b.WriteString(`
	],
	"autoApprovers": {
		// Routes the NAT instances advertise are approved without an admin.
		"routes": {`)
	for i, r := range v.Routes {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n\t\t\t" + q(r) + ": [" + q(v.NATTag) + "]")
	}
	b.WriteString("\n\t\t}\n\t}")
	if v.SSH {
		b.WriteString(`,
	"ssh": [
		// Admins get a shell on the NAT instances as root, with no key (tailscale SSH, which
		// the agent turns on with tailnet.ssh). No other user, and nobody else.
		{"action": "accept", "src": [` + q(v.AdminGroup) + `], "dst": [` + q(v.NATTag) + `], "users": [` + q(SSHUser) + `]}
	]`)
	}
	b.WriteString("\n}\n")
	return b.String()
}
