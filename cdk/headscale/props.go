package headscale

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"

	"github.com/headnat/headnat/cdk/natfleet"
	"github.com/headnat/headnat/policy"
)

// ACME challenge types headscale v0.29 supports.
const (
	ChallengeTLSALPN01 = "TLS-ALPN-01" // on 443, which is open anyway: port 80 stays closed
	ChallengeHTTP01    = "HTTP-01"     // opens 80/tcp to the internet
)

// Defaults for the zero fields of HeadscaleServerProps.
const (
	DefaultName          = "headscale"
	DefaultInstanceType  = "t4g.micro"
	DefaultRootVolumeGiB = 8
	DefaultDataVolumeGiB = 8
	DefaultRootDevice    = "/dev/xvda"
	DefaultSnapshotTime  = "03:00" // UTC
	DefaultSnapshotsKept = 7
	DefaultLogRetention  = awslogs.RetentionDays_TWO_WEEKS
)

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)
	labelRE    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	amiRE      = regexp.MustCompile(`^ami-([0-9a-f]{8}|[0-9a-f]{17})$`)
	ssmNameRE  = regexp.MustCompile(`^(/[a-zA-Z0-9_.-]+)+$`)
	zoneIDRE   = regexp.MustCompile(`^Z[A-Z0-9]{1,31}$`)
	hhmmRE     = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	acmeMailRE = regexp.MustCompile(`^[^@\s"']+@[^@\s"']+\.[^@\s"']+$`)
)

// HeadscaleServerProps configure NewHeadscaleServer. Zero fields take the defaults above.
type HeadscaleServerProps struct {
	// Vpc whose first public subnet holds the server.
	Vpc awsec2.IVpc
	// Name tags the server's resources and names its log group (default "headscale"; 1-32 of
	// [a-z0-9-]). Give each server of one account its own.
	Name string

	// Domain is the server's DNS name (required): server_url is https://Domain, and ACME
	// certifies it. Point an A record at the Elastic IP, or set HostedZoneID and HostedZoneName.
	Domain string
	// HostedZoneID and HostedZoneName (both or neither): a Route 53 zone that contains Domain,
	// where the construct creates the A record.
	HostedZoneID   string
	HostedZoneName string

	// TLS: ACME by default (headscale's built-in Let's Encrypt client, certificate cached on the
	// data volume). AcmeChallenge is TLS-ALPN-01 (default) or HTTP-01 (opens port 80).
	AcmeEmail     string
	AcmeChallenge string
	// Or a configured certificate: the names of two SSM SecureString parameters (PEM
	// certificate chain, PEM private key) the instance fetches at each start of headscale. Both
	// or neither; they exclude ACME. Only the names pass through CDK, never the key.
	CertSSMParameter string
	KeySSMParameter  string

	// Exactly one of AmiID and AmiSSMParameter: the headnat AMI, which carries headscale.
	AmiID           string
	AmiSSMParameter string
	// InstanceType is an arm64 (Graviton) type (default t4g.micro).
	InstanceType  string
	RootVolumeGiB int
	RootDevice    string

	// DataVolumeGiB is the size of the volume holding /var/lib/headscale (default 8).
	DataVolumeGiB int
	// RetainDataVolume keeps the volume itself when the stack deletes it; default: a final
	// snapshot is taken and the volume deleted (RemovalPolicy SNAPSHOT).
	RetainDataVolume bool
	// SnapshotTime (HH:MM, UTC, default 03:00) of the daily snapshot; SnapshotsKept (default 7)
	// is how many the DLM policy keeps.
	SnapshotTime  string
	SnapshotsKept int

	// The ACL policy (package policy), rendered at synth time: Admins are the admin group's
	// members; VpcCIDRs the routes the NAT instances advertise (default: the VPC's CIDR, when it
	// is known at synth time; a VPC of another stack needs them here).
	Admins   []string
	VpcCIDRs []string

	// LogRetention of the server's log group (default two weeks). NoLogGroup leaves it out.
	LogRetention awslogs.RetentionDays
	NoLogGroup   bool
}

// ACME reports whether the server gets its certificate from ACME.
func (p *HeadscaleServerProps) ACME() bool {
	return p.CertSSMParameter == "" && p.KeySSMParameter == ""
}

func (p HeadscaleServerProps) withDefaults() HeadscaleServerProps {
	if p.Name == "" {
		p.Name = DefaultName
	}
	if p.ACME() && p.AcmeChallenge == "" {
		p.AcmeChallenge = ChallengeTLSALPN01
	}
	if p.InstanceType == "" {
		p.InstanceType = DefaultInstanceType
	}
	if p.RootVolumeGiB == 0 {
		p.RootVolumeGiB = DefaultRootVolumeGiB
	}
	if p.RootDevice == "" {
		p.RootDevice = DefaultRootDevice
	}
	if p.DataVolumeGiB == 0 {
		p.DataVolumeGiB = DefaultDataVolumeGiB
	}
	if p.SnapshotTime == "" {
		p.SnapshotTime = DefaultSnapshotTime
	}
	if p.SnapshotsKept == 0 {
		p.SnapshotsKept = DefaultSnapshotsKept
	}
	if p.LogRetention == "" {
		p.LogRetention = DefaultLogRetention
	}
	if len(p.VpcCIDRs) == 0 && p.Vpc != nil {
		if c := p.Vpc.VpcCidrBlock(); c != nil && !*awscdk.Token_IsUnresolved(c) {
			p.VpcCIDRs = []string{*c}
		}
	}
	return p
}

// Validate returns the first problem with p (after defaults), naming the property.
func (p *HeadscaleServerProps) Validate() error {
	if p != nil && p.Vpc == nil {
		return fmt.Errorf("headscale: Vpc is required")
	}
	if err := p.ValidateSettings(); err != nil {
		return err
	}
	if len(p.withDefaults().VpcCIDRs) == 0 {
		return fmt.Errorf("headscale: VpcCIDRs is required: the VPC's CIDR is only known at deploy time")
	}
	return nil
}

// ValidateSettings is Validate without the Vpc (and so without the VPC's own CIDR), for
// callers that pass the VPC afterwards.
func (p *HeadscaleServerProps) ValidateSettings() error {
	if p == nil {
		return fmt.Errorf("headscale: no props")
	}
	d := p.withDefaults()
	switch {
	case !nameRE.MatchString(d.Name):
		return fmt.Errorf("headscale: Name %q: want 1-32 of [a-z0-9-], not starting or ending with '-'", d.Name)
	case d.Domain == "":
		return fmt.Errorf("headscale: Domain is required (server_url and the TLS certificate name it)")
	case !validDomain(d.Domain):
		return fmt.Errorf("headscale: Domain %q: want a lowercase DNS name such as hs.example.com", d.Domain)
	case (d.HostedZoneID == "") != (d.HostedZoneName == ""):
		return fmt.Errorf("headscale: set both HostedZoneID and HostedZoneName, or neither")
	case d.HostedZoneID != "" && !zoneIDRE.MatchString(d.HostedZoneID):
		return fmt.Errorf("headscale: HostedZoneID %q: want Z...", d.HostedZoneID)
	case d.HostedZoneName != "" && !inZone(d.Domain, d.HostedZoneName):
		return fmt.Errorf("headscale: HostedZoneName %q does not contain Domain %q", d.HostedZoneName, d.Domain)
	case (d.CertSSMParameter == "") != (d.KeySSMParameter == ""):
		return fmt.Errorf("headscale: set both CertSSMParameter and KeySSMParameter (certificate and key), or neither for ACME")
	case !d.ACME() && (d.AcmeEmail != "" || d.AcmeChallenge != ""):
		return fmt.Errorf("headscale: AcmeEmail/AcmeChallenge and CertSSMParameter/KeySSMParameter exclude each other: choose ACME or a configured certificate")
	case d.CertSSMParameter != "" && !ssmNameRE.MatchString(d.CertSSMParameter):
		return fmt.Errorf("headscale: CertSSMParameter %q: want a full parameter name (/...)", d.CertSSMParameter)
	case d.KeySSMParameter != "" && !ssmNameRE.MatchString(d.KeySSMParameter):
		return fmt.Errorf("headscale: KeySSMParameter %q: want a full parameter name (/...)", d.KeySSMParameter)
	case d.CertSSMParameter != "" && d.CertSSMParameter == d.KeySSMParameter:
		return fmt.Errorf("headscale: CertSSMParameter and KeySSMParameter are the same parameter")
	case d.ACME() && d.AcmeChallenge != ChallengeTLSALPN01 && d.AcmeChallenge != ChallengeHTTP01:
		return fmt.Errorf("headscale: AcmeChallenge %q: want %s or %s", d.AcmeChallenge, ChallengeTLSALPN01, ChallengeHTTP01)
	case d.AcmeEmail != "" && !acmeMailRE.MatchString(d.AcmeEmail):
		return fmt.Errorf("headscale: AcmeEmail %q is not an email address", d.AcmeEmail)
	case (d.AmiID == "") == (d.AmiSSMParameter == ""):
		return fmt.Errorf("headscale: set exactly one of AmiID and AmiSSMParameter")
	case d.AmiID != "" && !amiRE.MatchString(d.AmiID):
		return fmt.Errorf("headscale: AmiID %q: want ami-...", d.AmiID)
	case d.AmiSSMParameter != "" && !ssmNameRE.MatchString(d.AmiSSMParameter):
		return fmt.Errorf("headscale: AmiSSMParameter %q: want a full parameter name (/...)", d.AmiSSMParameter)
	case !natfleet.IsGraviton(d.InstanceType):
		return fmt.Errorf("headscale: InstanceType %q is not a Graviton (arm64) type: the headnat AMI is arm64", d.InstanceType)
	case d.RootVolumeGiB < 2:
		return fmt.Errorf("headscale: RootVolumeGiB %d: want at least 2", d.RootVolumeGiB)
	case d.DataVolumeGiB < 1 || d.DataVolumeGiB > 1024:
		return fmt.Errorf("headscale: DataVolumeGiB %d: want 1 to 1024", d.DataVolumeGiB)
	case !hhmmRE.MatchString(d.SnapshotTime):
		return fmt.Errorf("headscale: SnapshotTime %q: want HH:MM (UTC)", d.SnapshotTime)
	case d.SnapshotsKept < 1 || d.SnapshotsKept > 1000:
		return fmt.Errorf("headscale: SnapshotsKept %d: want 1 to 1000", d.SnapshotsKept)
	}
	for _, c := range d.VpcCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			return fmt.Errorf("headscale: VpcCIDRs: %q is not a CIDR", c)
		}
	}
	if len(d.VpcCIDRs) > 0 {
		if _, err := renderPolicy(d); err != nil {
			return fmt.Errorf("headscale: Admins/VpcCIDRs: %w", err)
		}
	}
	return nil
}

// renderPolicy is the ACL policy of package policy for these props.
func renderPolicy(p HeadscaleServerProps) ([]byte, error) {
	var cidrs []netip.Prefix
	for _, c := range p.VpcCIDRs {
		pfx, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("VpcCIDRs: %q is not a CIDR", c)
		}
		cidrs = append(cidrs, pfx)
	}
	return policy.Render(policy.Params{Admins: p.Admins, VPCCIDRs: cidrs})
}

func validDomain(d string) bool {
	if len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if !labelRE.MatchString(l) {
			return false
		}
	}
	return true
}

func inZone(domain, zone string) bool {
	zone = strings.TrimSuffix(strings.ToLower(zone), ".")
	return zone != "" && (domain == zone || strings.HasSuffix(domain, "."+zone))
}
