// Package tailnet keeps tailscaled logged in to headscale as a subnet router for the VPC. It is
// the only package of headnat that imports tailscale.com.
//
// It is shaped like tailscale's wgengine/router: a small LocalClient interface (the part of
// tailscale's LocalAPI client it uses), a Router whose Set(Desired) works out what differs from
// what tailscaled has and changes only that, and a fake (FakeLocalClient) for tests. The code
// is pure: it talks to tailscaled's socket and nothing else.
//
// headscale v0.29 specifics the Router relies on (read in headscale's source; login, approval,
// primary and withdraw are exercised against the real server in router_linux_test.go):
//
//   - Tags come from the pre-auth key. headscale rejects a new registration that carries a
//     pre-auth key and --advertise-tags, and keeps a tagged node's tags when it logs in again,
//     so the Router never advertises tags: it compares Desired.Tags with the tags headscale
//     gave the node, logs in again with the key once if they differ (that converts a
//     user-owned node to the key's tags), and reports Degraded if they still differ.
//   - A node's own view of itself (Status.Self.PrimaryRoutes, AllowedIPs) lists only the
//     routes it is primary for, only if the ACL lets it reach them, and is not resent when
//     the primary moves, so it goes stale. The peers' views are resent. So State.Approved
//     comes from the packet filter headscale sends (it covers a router's routes once they are
//     approved; package policy adds a rule per route so they always appear), and the primary
//     is found by elimination: an approved route no peer is primary for is this node's.
package tailnet
