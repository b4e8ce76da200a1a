package cloud

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// Identity is this instance as IMDS describes it. LaunchTime is not in IMDS: it is zero
// until the caller fills it from DescribeSelf.
type Identity struct {
	InstanceID string
	Region     string
	AZ         string
	MAC        string
	ENI        string // primary network interface
	PrivateIP  netip.Addr
	SubnetID   string
	VPCID      string
	VPCCIDRs   []netip.Prefix
	LaunchTime time.Time
}

const maxMetadataBytes = 64 << 10

// metadata reads one IMDS path (relative to /latest/meta-data/), trimmed.
func (c *Client) metadata(ctx context.Context, path, reason string) (string, error) {
	if c.imds == nil {
		return "", fmt.Errorf("imds %s: %w", path, errNoClient)
	}
	var s string
	err := c.do(ctx, call{op: "GetMetadata", reason: reason, timeout: c.o.Timeouts.IMDS,
		attrs: []any{"path", path}, expected: isNotFound},
		func(ctx context.Context) error {
			out, err := c.imds.GetMetadata(ctx, &imds.GetMetadataInput{Path: path}, c.imdsOpt())
			if err != nil {
				return err
			}
			defer out.Content.Close()
			b, err := io.ReadAll(io.LimitReader(out.Content, maxMetadataBytes))
			if err != nil {
				return err
			}
			s = strings.TrimSpace(string(b))
			return nil
		})
	if err != nil {
		return "", fmt.Errorf("imds %s: %w", path, err)
	}
	return s, nil
}

// required reads a path that must exist and be non-empty.
func (c *Client) required(ctx context.Context, path, reason string) (string, error) {
	s, err := c.metadata(ctx, path, reason)
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", bad("imds "+path, "empty value")
	}
	return s, nil
}

func (c *Client) readRegion(ctx context.Context) (string, error) {
	r, err := c.metadata(ctx, "placement/region", "region")
	if err == nil && r != "" {
		return r, nil
	}
	if err != nil && !isNotFound(err) {
		return "", err
	}
	// Older metadata versions have no placement/region: the identity document has it.
	var doc imds.InstanceIdentityDocument
	err = c.do(ctx, call{op: "GetInstanceIdentityDocument", reason: "region", timeout: c.o.Timeouts.IMDS},
		func(ctx context.Context) error {
			out, err := c.imds.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{}, c.imdsOpt())
			if err != nil {
				return err
			}
			doc = out.InstanceIdentityDocument
			return nil
		})
	if err != nil {
		return "", fmt.Errorf("imds identity document: %w", err)
	}
	if doc.Region == "" {
		return "", bad("imds identity document", "no region")
	}
	return doc.Region, nil
}

// ReadIdentity reads this instance's identity from IMDS (v2 only) and caches it for
// SourceDestCheckOff. Any missing or unparsable value is an error; nothing is cached then.
func (c *Client) ReadIdentity(ctx context.Context) (Identity, error) {
	const reason = "identity"
	var id Identity
	var err error
	if id.InstanceID, err = c.required(ctx, "instance-id", reason); err != nil {
		return Identity{}, err
	}
	if id.AZ, err = c.required(ctx, "placement/availability-zone", reason); err != nil {
		return Identity{}, err
	}
	if id.Region, err = c.readRegion(ctx); err != nil {
		return Identity{}, err
	}
	mac, err := c.required(ctx, "mac", reason)
	if err != nil {
		return Identity{}, err
	}
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return Identity{}, bad("imds mac", "%q is not a MAC address", mac)
	}
	id.MAC = hw.String()
	base := "network/interfaces/macs/" + id.MAC + "/"
	if id.ENI, err = c.required(ctx, base+"interface-id", reason); err != nil {
		return Identity{}, err
	}
	if id.SubnetID, err = c.required(ctx, base+"subnet-id", reason); err != nil {
		return Identity{}, err
	}
	if id.VPCID, err = c.required(ctx, base+"vpc-id", reason); err != nil {
		return Identity{}, err
	}
	ip, err := c.required(ctx, "local-ipv4", reason)
	if err != nil {
		return Identity{}, err
	}
	if id.PrivateIP, err = netip.ParseAddr(ip); err != nil || !id.PrivateIP.Is4() {
		return Identity{}, bad("imds local-ipv4", "%q is not an IPv4 address", ip)
	}
	cidrs, err := c.required(ctx, base+"vpc-ipv4-cidr-blocks", reason)
	if err != nil {
		return Identity{}, err
	}
	if id.VPCCIDRs, err = parseCIDRs(cidrs); err != nil {
		return Identity{}, bad("imds "+base+"vpc-ipv4-cidr-blocks", "%v", err)
	}
	c.mu.Lock()
	cp := id
	cp.VPCCIDRs = append([]netip.Prefix(nil), id.VPCCIDRs...)
	c.self = &cp
	c.mu.Unlock()
	return id, nil
}

// parseCIDRs parses IMDS's newline-separated list of IPv4 network prefixes.
func parseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Fields(s) {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR", f)
		}
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("%q is not IPv4", f)
		}
		if p != p.Masked() {
			return nil, fmt.Errorf("%q is not a network prefix (host bits set)", f)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no CIDR in %q", s)
	}
	return out, nil
}

// SpotNotice is a spot interruption notice.
type SpotNotice struct {
	Action string    // terminate, stop or hibernate
	Time   time.Time // when it happens
}

// SpotInterruption polls spot/instance-action: nil when there is no notice (404).
func (c *Client) SpotInterruption(ctx context.Context) (*SpotNotice, error) {
	s, err := c.metadata(ctx, "spot/instance-action", "poll spot interruption")
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var v struct {
		Action string `json:"action"`
		Time   string `json:"time"`
	}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, bad("imds spot/instance-action", "%q: %v", s, err)
	}
	t, err := time.Parse(time.RFC3339, v.Time)
	if v.Action == "" || err != nil {
		return nil, bad("imds spot/instance-action", "want action and RFC 3339 time, got %q", s)
	}
	return &SpotNotice{Action: v.Action, Time: t}, nil
}

// RebalanceRecommendation polls events/recommendations/rebalance: ok is false when there
// is none (404).
func (c *Client) RebalanceRecommendation(ctx context.Context) (noticeTime time.Time, ok bool, err error) {
	s, err := c.metadata(ctx, "events/recommendations/rebalance", "poll rebalance recommendation")
	if isNotFound(err) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	var v struct {
		NoticeTime string `json:"noticeTime"`
	}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return time.Time{}, false, bad("imds events/recommendations/rebalance", "%q: %v", s, err)
	}
	t, err := time.Parse(time.RFC3339, v.NoticeTime)
	if err != nil {
		return time.Time{}, false, bad("imds events/recommendations/rebalance", "noticeTime %q is not RFC 3339", v.NoticeTime)
	}
	return t, true, nil
}

// TargetLifecycleState polls autoscaling/target-lifecycle-state ("InService",
// "Terminated", "Warmed:*", ...): "" when the instance is not in an Auto Scaling group (404).
func (c *Client) TargetLifecycleState(ctx context.Context) (string, error) {
	s, err := c.metadata(ctx, "autoscaling/target-lifecycle-state", "poll lifecycle state")
	if isNotFound(err) {
		return "", nil
	}
	return s, err
}

// PublicIPv4 reads the instance's public IPv4 address: "" when it has none (404).
func (c *Client) PublicIPv4(ctx context.Context) (string, error) {
	s, err := c.metadata(ctx, "public-ipv4", "public address")
	if isNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if a, perr := netip.ParseAddr(s); perr != nil || !a.Is4() {
		return "", bad("imds public-ipv4", "%q is not an IPv4 address", s)
	}
	return s, nil
}
