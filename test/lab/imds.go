package lab

import (
	"encoding/json"
	"fmt"
	"strings"
)

// IMDSAddr is where each NAT namespace serves its own instance metadata.
const IMDSAddr = "169.254.169.254"

// farFuture keeps the mock's spot notice, rebalance recommendation and ASG termination from
// firing: the mock fires them at once unless given a trigger time.
const farFuture = "2099-01-01T00:00:00Z"

// imdsConfig is the ec2-metadata-mock configuration (dashed keys) for one NAT instance. The mock
// rewrites every per-MAC path to the overridden "mac" itself.
func imdsConfig(s *Site, vpcID string) ([]byte, error) {
	host := "ip-" + strings.ReplaceAll(s.NATIP, ".", "-") + ".ec2.internal"
	values := map[string]string{
		"instance-id":                      s.InstanceID,
		"instance-type":                    "t4g.nano",
		"instance-life-cycle":              "spot",
		"ami-id":                           "ami-0123456789abcdef0",
		"hostname":                         host,
		"local-hostname":                   host,
		"local-ipv4":                       s.NATIP,
		"public-ipv4":                      s.EIP,
		"public-hostname":                  "",
		"mac":                              s.MAC,
		"mac-mac":                          s.MAC,
		"mac-device-number":                "0",
		"mac-network-interface-card-index": "0",
		"mac-network-interface-id":         s.ENI,
		"mac-local-ipv4s":                  s.NATIP,
		"mac-local-hostname":               host,
		"mac-public-ipv4s":                 s.EIP,
		"mac-ipv4-associations":            s.NATIP,
		"mac-owner-id":                     AccountID,
		"mac-subnet-id":                    s.PublicSubnet,
		"mac-subnet-ipv4-cidr-block":       s.PublicCIDR,
		"mac-vpc-id":                       vpcID,
		"mac-vpc-ipv4-cidr-block":          VPCCIDR,
		"mac-vpc-ipv4-cidr-blocks":         VPCCIDR,
		"placement-availability-zone":      s.Zone,
		"placement-availability-zone-id":   "use1-az" + s.AZ,
		"placement-region":                 Region,
		"tags-instance-name":               "headnat-" + s.Name,
	}
	doc := map[string]any{
		"accountId":        AccountID,
		"architecture":     "arm64",
		"availabilityZone": s.Zone,
		"imageId":          "ami-0123456789abcdef0",
		"instanceId":       s.InstanceID,
		"instanceType":     "t4g.nano",
		"pendingTime":      s.LaunchTime.UTC().Format("2006-01-02T15:04:05Z"),
		"privateIp":        s.NATIP,
		"region":           Region,
		"version":          "2017-09-30",
	}
	cfg := map[string]any{
		"imdsv2":                       true,
		"mock-trigger-time":            farFuture,
		"rebalance-trigger-time":       farFuture,
		"asg-termination-trigger-time": farFuture,
		"mock-ip-count":                -1,
		"server":                       map[string]string{"hostname": IMDSAddr, "port": "80"},
		"metadata": map[string]any{
			"values": values,
			// The mock keeps the default's "ipv4-associations/<its default IP>" path otherwise.
			"paths": map[string]string{
				"mac-ipv4-associations": "/latest/meta-data/network/interfaces/macs/" + s.MAC + "/ipv4-associations/" + s.EIP,
			},
		},
		"dynamic": map[string]any{"values": map[string]any{"instance-identity-document": doc}},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("imds config: %w", err)
	}
	return b, nil
}
