package natfleet

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
)

// Defaults for the zero fields of NatFleetProps.
const (
	DefaultInstancesPerAZ = 1
	DefaultRootVolumeGiB  = 8
	DefaultRootDevice     = "/dev/xvda"
	DefaultLogRetention   = awslogs.RetentionDays_TWO_WEEKS
	// Hook names: the agent takes a group's only hook of each transition, whatever its name.
	LaunchHookName    = "headnat-launch"
	TerminateHookName = "headnat-terminate"
	// HookHeartbeatSeconds is both hooks' heartbeat timeout; the agent heartbeats meanwhile.
	HookHeartbeatSeconds = 300
)

// DefaultInstanceTypes are Graviton types in order of preference (cheapest first): a NAT
// needs little CPU, and several types keep spot capacity available.
func DefaultInstanceTypes() []string {
	return []string{"t4g.nano", "t4g.micro", "t4g.small", "c7g.medium", "c6g.medium", "m7g.medium"}
}

var clusterName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)
var amiID = regexp.MustCompile(`^ami-([0-9a-f]{8}|[0-9a-f]{17})$`)
var graviton = regexp.MustCompile(`^[a-z][0-9]+g[a-z]*\.[a-z0-9]+$`)

// IsGraviton reports whether instanceType is a Graviton (arm64) type such as "t4g.micro".
func IsGraviton(instanceType string) bool { return graviton.MatchString(instanceType) }

// NatFleetProps configure NewNatFleet. Zero fields take the defaults above.
type NatFleetProps struct {
	// Vpc with public subnets (the instances) and private subnets (their route tables).
	Vpc awsec2.IVpc
	// Cluster is the headnat:cluster tag value: 1-32 of [a-z0-9-], not starting or ending with '-'.
	Cluster string

	// Exactly one of AmiID ("ami-...") and AmiSSMParameter (resolved at deploy time).
	AmiID           string
	AmiSSMParameter string

	// InstancesPerAZ is each group's capacity (nil: 1; 0 is an error). The group's maximum is
	// one more, room for a replacement to launch before the instance it replaces leaves.
	InstancesPerAZ *int
	// InstanceTypes are arm64 types in order of preference (default DefaultInstanceTypes).
	InstanceTypes []string
	// OnDemandBase is how many instances per group run on demand before spot is used
	// (default 0: spot only). Auto Scaling does not fall back to on demand by itself when spot
	// capacity is short; set this to InstancesPerAZ for an all on-demand fleet.
	OnDemandBase int
	// RootVolumeGiB (default 8) and RootDevice (default /dev/xvda, as on Debian's AMIs).
	RootVolumeGiB int
	RootDevice    string

	// EipPool creates Elastic IPs tagged with the cluster and turns eip.pool on: EipPoolSize
	// of them (default: the fleet's instances + 1, so that a replacement launched before the
	// old instance leaves finds a free address). Fewer than the fleet's instances is an error.
	EipPool     bool
	EipPoolSize int
	// TailnetLoginServer is headscale's URL; empty: no tailnet.
	TailnetLoginServer string
	// AuthKeySSMParameter names the SecureString parameter holding the tailnet pre-auth key
	// (the name only: the key itself never passes through CDK). Needs TailnetLoginServer.
	AuthKeySSMParameter string

	// NoAlarms leaves out the two CloudWatch alarms ("no healthy NAT for a route table",
	// "failover happened") and the metrics the agents publish for them (about $0.30 per month
	// for the one metric sent every minute, plus $0.01 per 1,000 PutMetricData calls: about
	// $0.44 per instance per month; $0.10 per alarm).
	NoAlarms bool
	// AlarmTopic, if set, is notified when an alarm goes off (and when "no healthy NAT" clears).
	AlarmTopic awssns.ITopic

	// LogRetention of the fleet's log group (default two weeks). NoLogGroup leaves it out.
	LogRetention awslogs.RetentionDays
	NoLogGroup   bool
}

// ValidateFleetSize checks what depends on the number of AZs (groups).
func (p *NatFleetProps) ValidateFleetSize(azs int) error {
	d := p.withDefaults()
	if n := azs * *d.InstancesPerAZ; d.EipPool && d.EipPoolSize > 0 && d.EipPoolSize < n {
		return fmt.Errorf("natfleet: EipPoolSize %d is smaller than the fleet (%d AZs x %d instances = %d): every NAT needs an address, plus one spare for replacements", d.EipPoolSize, azs, *d.InstancesPerAZ, n)
	}
	return nil
}

// eipPoolSize is how many addresses the pool gets with azs groups.
func (p NatFleetProps) eipPoolSize(azs int) int {
	if p.EipPoolSize > 0 {
		return p.EipPoolSize
	}
	return azs**p.InstancesPerAZ + 1
}

// withDefaults returns p with its zero fields set.
func (p NatFleetProps) withDefaults() NatFleetProps {
	if p.InstancesPerAZ == nil {
		n := DefaultInstancesPerAZ
		p.InstancesPerAZ = &n
	}
	if len(p.InstanceTypes) == 0 {
		p.InstanceTypes = DefaultInstanceTypes()
	}
	if p.RootVolumeGiB == 0 {
		p.RootVolumeGiB = DefaultRootVolumeGiB
	}
	if p.RootDevice == "" {
		p.RootDevice = DefaultRootDevice
	}
	if p.LogRetention == "" {
		p.LogRetention = DefaultLogRetention
	}
	return p
}

// Validate returns the first problem with p (after defaults), naming the property.
func (p *NatFleetProps) Validate() error {
	if p != nil && p.Vpc == nil {
		return fmt.Errorf("natfleet: Vpc is required")
	}
	return p.ValidateSettings()
}

// ValidateSettings is Validate without the Vpc, for callers that create the VPC afterwards.
func (p *NatFleetProps) ValidateSettings() error {
	if p == nil {
		return fmt.Errorf("natfleet: no props")
	}
	d := p.withDefaults()
	switch {
	case !clusterName.MatchString(d.Cluster):
		return fmt.Errorf("natfleet: Cluster %q: want 1-32 of [a-z0-9-], not starting or ending with '-'", d.Cluster)
	case (d.AmiID == "") == (d.AmiSSMParameter == ""):
		return fmt.Errorf("natfleet: set exactly one of AmiID and AmiSSMParameter")
	case d.AmiID != "" && !amiID.MatchString(d.AmiID):
		return fmt.Errorf("natfleet: AmiID %q: want ami-...", d.AmiID)
	case *d.InstancesPerAZ < 1:
		return fmt.Errorf("natfleet: InstancesPerAZ %d: want at least 1 NAT instance per AZ", *d.InstancesPerAZ)
	case d.OnDemandBase < 0 || d.OnDemandBase > *d.InstancesPerAZ:
		return fmt.Errorf("natfleet: OnDemandBase %d: want 0 to InstancesPerAZ (%d)", d.OnDemandBase, *d.InstancesPerAZ)
	case d.EipPoolSize < 0 || (d.EipPoolSize > 0 && !d.EipPool):
		return fmt.Errorf("natfleet: EipPoolSize %d: want a positive size, with EipPool", d.EipPoolSize)
	case d.NoAlarms && d.AlarmTopic != nil:
		return fmt.Errorf("natfleet: AlarmTopic is set but NoAlarms leaves the alarms out")
	case d.RootVolumeGiB < 2:
		return fmt.Errorf("natfleet: RootVolumeGiB %d: want at least 2", d.RootVolumeGiB)
	case d.AuthKeySSMParameter != "" && d.TailnetLoginServer == "":
		return fmt.Errorf("natfleet: AuthKeySSMParameter needs TailnetLoginServer")
	case d.TailnetLoginServer != "" && d.AuthKeySSMParameter == "":
		return fmt.Errorf("natfleet: TailnetLoginServer needs AuthKeySSMParameter (the agent logs in with the pre-auth key stored there)")
	case d.AuthKeySSMParameter != "" && !strings.HasPrefix(d.AuthKeySSMParameter, "/"):
		return fmt.Errorf("natfleet: AuthKeySSMParameter %q: want a full path (/...)", d.AuthKeySSMParameter)
	}
	for _, t := range d.InstanceTypes {
		if !IsGraviton(t) {
			return fmt.Errorf("natfleet: InstanceTypes: %q is not a Graviton (arm64) type", t)
		}
	}
	if d.TailnetLoginServer != "" {
		u, err := url.Parse(d.TailnetLoginServer)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return fmt.Errorf("natfleet: TailnetLoginServer %q: want http(s)://host[:port] without credentials", d.TailnetLoginServer)
		}
	}
	return nil
}
