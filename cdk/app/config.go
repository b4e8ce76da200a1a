// Package app turns the CDK app's context values (-c key=value, cdk.json) into the stacks'
// props, and checks them before anything is built: bad input is one error, and no template.
package app

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/headnat/headnat/cdk/headscale"
	"github.com/headnat/headnat/cdk/natfleet"
	"github.com/headnat/headnat/cdk/platform"
	"github.com/headnat/headnat/cdk/stacks"
)

// Context keys the app reads. Each is documented in the README's deploy section.
const (
	KeyAccount         = "account"
	KeyRegion          = "region"
	KeyCluster         = "cluster"
	KeyAmiID           = "ami-id"
	KeyAmiSSM          = "ami-ssm-parameter"
	KeyVpcCIDR         = "vpc-cidr"
	KeyAZs             = "azs"
	KeyInstancesPerAZ  = "instances-per-az"
	KeyInstanceTypes   = "instance-types"
	KeyOnDemandBase    = "on-demand-base"
	KeyEipPool         = "eip-pool"
	KeyEipPoolSize     = "eip-pool-size"
	KeyHeadscaleURL    = "headscale-url"
	KeyHeadscaleDomain = "headscale-domain"
	KeyAcmeEmail       = "headscale-acme-email"
	KeyAdmins          = "headscale-admins"
	KeyAcmeChallenge   = "headscale-acme-challenge"
	KeyCertSSM         = "headscale-cert-ssm-parameter"
	KeyKeySSM          = "headscale-key-ssm-parameter"
	KeyZoneID          = "headscale-hosted-zone-id"
	KeyZoneName        = "headscale-hosted-zone-name"
	KeyAuthKeySSM      = "auth-key-ssm-parameter"
	KeyAlarmEmail      = "alarm-email"
	KeyAlarms          = "alarms"
	// KeyPlatformConfig is the platform stack's YAML file (cdk/platform): relative to the
	// settings file's directory when it comes from there, else to the working directory
	// (cdk/ for make and npx cdk).
	KeyPlatformConfig = "platform-config"
)

// DefaultCluster is the cluster name when the context has none.
const DefaultCluster = "headnat"

// Config is what the context asks for.
type Config struct {
	Account, Region string
	Cluster         string
	AmiID           string
	AmiSSMParameter string
	VpcCIDR         string
	AZs             int // 0: the default (2)
	InstancesPerAZ  *int
	InstanceTypes   []string
	OnDemandBase    int
	EipPool         bool
	EipPoolSize     int
	// HeadscaleURL is an existing headscale server; HeadscaleDomain deploys one at that name.
	HeadscaleURL        string
	HeadscaleDomain     string
	AcmeEmail           string
	AcmeChallenge       string
	CertSSMParameter    string
	KeySSMParameter     string
	HostedZoneID        string
	HostedZoneName      string
	Admins              []string
	AuthKeySSMParameter string
	AlarmEmail          string
	Alarms              bool
	// PlatformConfig is the platform file's path; Platform its checked content (nil: no
	// platform stack).
	PlatformConfig string
	Platform       *platform.Config
}

// FromContext reads the context through get (nil or "" for a missing key).
func FromContext(get func(key string) any) (Config, error) {
	str := func(k string) string {
		v := get(k)
		if v == nil {
			return ""
		}
		return strings.TrimSpace(fmt.Sprint(v))
	}
	c := Config{
		Account: str(KeyAccount), Region: str(KeyRegion), Cluster: str(KeyCluster),
		AmiID: str(KeyAmiID), AmiSSMParameter: str(KeyAmiSSM), VpcCIDR: str(KeyVpcCIDR),
		HeadscaleURL: str(KeyHeadscaleURL), HeadscaleDomain: str(KeyHeadscaleDomain),
		AcmeEmail: str(KeyAcmeEmail), AuthKeySSMParameter: str(KeyAuthKeySSM),
		AlarmEmail: str(KeyAlarmEmail), Alarms: true,
		AcmeChallenge: str(KeyAcmeChallenge), CertSSMParameter: str(KeyCertSSM), KeySSMParameter: str(KeyKeySSM),
		HostedZoneID: str(KeyZoneID), HostedZoneName: str(KeyZoneName),
		InstanceTypes: list(str(KeyInstanceTypes)), Admins: list(str(KeyAdmins)),
		PlatformConfig: str(KeyPlatformConfig),
	}
	if c.Cluster == "" {
		c.Cluster = DefaultCluster
	}
	ints := []struct {
		key string
		dst *int
	}{{KeyAZs, &c.AZs}, {KeyOnDemandBase, &c.OnDemandBase}, {KeyEipPoolSize, &c.EipPoolSize}}
	for _, i := range ints {
		if v := str(i.key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return c, fmt.Errorf("context %s=%q: want a whole number", i.key, v)
			}
			*i.dst = n
		}
	}
	if v := str(KeyAZs); v != "" && c.AZs < 2 {
		return c, fmt.Errorf("context %s=%d: want at least 2 AZs (a NAT fails over to another AZ)", KeyAZs, c.AZs)
	}
	if v := str(KeyInstancesPerAZ); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return c, fmt.Errorf("context %s=%q: want a whole number", KeyInstancesPerAZ, v)
		}
		c.InstancesPerAZ = &n
	}
	bools := []struct {
		key string
		dst *bool
	}{{KeyEipPool, &c.EipPool}, {KeyAlarms, &c.Alarms}}
	for _, b := range bools {
		if v := str(b.key); v != "" {
			x, err := strconv.ParseBool(v)
			if err != nil {
				return c, fmt.Errorf("context %s=%q: want true or false", b.key, v)
			}
			*b.dst = x
		}
	}
	if c.EipPoolSize != 0 && str(KeyEipPool) == "" {
		c.EipPool = true
	}
	if err := c.validate(); err != nil {
		return c, err
	}
	if c.PlatformConfig != "" {
		p, err := platform.Load(c.PlatformConfig)
		if err != nil {
			return c, fmt.Errorf("context %s: %w", KeyPlatformConfig, err)
		}
		c.Platform = p
	}
	return c, nil
}

var email = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)

func (c Config) validate() error {
	switch {
	case (c.Account == "") != (c.Region == ""):
		return fmt.Errorf("context: set both %s and %s, or neither (an environment-agnostic stack)", KeyAccount, KeyRegion)
	case c.Account != "" && !regexp.MustCompile(`^[0-9]{12}$`).MatchString(c.Account):
		return fmt.Errorf("context %s=%q: want a 12-digit AWS account id", KeyAccount, c.Account)
	case c.Region != "" && !regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`).MatchString(c.Region):
		return fmt.Errorf("context %s=%q: want a region like eu-west-1", KeyRegion, c.Region)
	case c.AmiID == "" && c.AmiSSMParameter == "":
		return fmt.Errorf("context: no AMI: set %s (ami-...) or %s (an SSM parameter holding the AMI id); build it with `make ami`", KeyAmiID, KeyAmiSSM)
	case c.AmiID != "" && c.AmiSSMParameter != "":
		return fmt.Errorf("context: set %s or %s, not both", KeyAmiID, KeyAmiSSM)
	case c.HeadscaleURL != "" && c.HeadscaleDomain != "":
		return fmt.Errorf("context: set %s (an existing server) or %s (deploy one), not both", KeyHeadscaleURL, KeyHeadscaleDomain)
	case c.HeadscaleDomain == "" && (c.AcmeEmail != "" || c.AcmeChallenge != "" || c.CertSSMParameter != "" ||
		c.KeySSMParameter != "" || c.HostedZoneID != "" || c.HostedZoneName != "" || len(c.Admins) > 0):
		return fmt.Errorf("context: the headscale-* settings are for a headscale server deployed here: set %s too", KeyHeadscaleDomain)
	case c.HeadscaleURL != "" && c.AuthKeySSMParameter == "":
		return fmt.Errorf("context %s needs %s (the SSM parameter holding the NATs' pre-auth key)", KeyHeadscaleURL, KeyAuthKeySSM)
	case c.AuthKeySSMParameter != "" && c.HeadscaleURL == "" && c.HeadscaleDomain == "":
		return fmt.Errorf("context %s needs %s or %s", KeyAuthKeySSM, KeyHeadscaleURL, KeyHeadscaleDomain)
	case c.AlarmEmail != "" && !email.MatchString(c.AlarmEmail):
		return fmt.Errorf("context %s=%q: want an email address", KeyAlarmEmail, c.AlarmEmail)
	case c.AlarmEmail != "" && !c.Alarms:
		return fmt.Errorf("context %s needs %s=true", KeyAlarmEmail, KeyAlarms)
	}
	return nil
}

// LoginServer is the tailnet's URL: the existing server's, or the deployed one's.
func (c Config) LoginServer() string {
	if c.HeadscaleDomain != "" {
		return "https://" + c.HeadscaleDomain
	}
	return c.HeadscaleURL
}

// fleetLoginServer: the NATs join the tailnet once there is a key for them. A first deploy of
// headscale has none yet (it is created on the new server), so the NATs start without.
func (c Config) fleetLoginServer() string {
	if c.AuthKeySSMParameter == "" {
		return ""
	}
	return c.LoginServer()
}

// NetworkProps are the network stack's props for c.
func (c Config) NetworkProps() *stacks.NetworkStackProps {
	return &stacks.NetworkStackProps{
		StackProps: awscdk.StackProps{
			Description: jsii.String("headnat: a VPC whose private subnets reach the internet through NAT instances"),
			Env:         c.env(),
		},
		VpcCIDR:    c.VpcCIDR,
		MaxAZs:     c.AZs,
		AlarmEmail: c.AlarmEmail,
		Fleet: natfleet.NatFleetProps{
			Cluster:             c.Cluster,
			AmiID:               c.AmiID,
			AmiSSMParameter:     c.AmiSSMParameter,
			InstancesPerAZ:      c.InstancesPerAZ,
			InstanceTypes:       c.InstanceTypes,
			OnDemandBase:        c.OnDemandBase,
			EipPool:             c.EipPool,
			EipPoolSize:         c.EipPoolSize,
			TailnetLoginServer:  c.fleetLoginServer(),
			AuthKeySSMParameter: c.AuthKeySSMParameter,
			NoAlarms:            !c.Alarms,
		},
	}
}

func (c Config) env() *awscdk.Environment {
	if c.Account == "" {
		return nil
	}
	return &awscdk.Environment{Account: jsii.String(c.Account), Region: jsii.String(c.Region)}
}

// HeadscaleProps are the headscale stack's props for c without its Vpc (nil without
// HeadscaleDomain).
func (c Config) HeadscaleProps() *stacks.HeadscaleStackProps {
	if c.HeadscaleDomain == "" {
		return nil
	}
	cidr := c.VpcCIDR
	if cidr == "" {
		cidr = stacks.DefaultVpcCIDR
	}
	return &stacks.HeadscaleStackProps{
		StackProps: awscdk.StackProps{
			Description: jsii.String("headnat: the tailnet's headscale server"),
			Env:         c.env(),
		},
		Server: headscale.HeadscaleServerProps{
			Name:             "headscale-" + c.Cluster,
			Domain:           c.HeadscaleDomain,
			HostedZoneID:     c.HostedZoneID,
			HostedZoneName:   c.HostedZoneName,
			AcmeEmail:        c.AcmeEmail,
			AcmeChallenge:    c.AcmeChallenge,
			CertSSMParameter: c.CertSSMParameter,
			KeySSMParameter:  c.KeySSMParameter,
			AmiID:            c.AmiID,
			AmiSSMParameter:  c.AmiSSMParameter,
			Admins:           c.Admins,
			VpcCIDRs:         []string{cidr},
		},
	}
}

// Validate checks c and the props it makes, without building anything.
func (c Config) Validate() error {
	if err := c.validate(); err != nil {
		return err
	}
	if err := c.NetworkProps().Validate(); err != nil {
		return err
	}
	if hp := c.HeadscaleProps(); hp != nil {
		if err := hp.Server.ValidateSettings(); err != nil {
			return err
		}
	}
	if c.Platform != nil {
		if err := c.Platform.Validate(); err != nil {
			return fmt.Errorf("context %s: %w", KeyPlatformConfig, err)
		}
	}
	return nil
}

// PlatformProps are the platform stack's props for c without its Vpc (nil without a
// platform config).
func (c Config) PlatformProps() *stacks.PlatformStackProps {
	if c.Platform == nil {
		return nil
	}
	return &stacks.PlatformStackProps{
		StackProps: awscdk.StackProps{
			Description: jsii.String("headnat: the platform's services behind one load balancer, on Fargate Spot"),
			Env:         c.env(),
		},
		Name:   c.Cluster,
		Config: c.Platform,
	}
}

// NetworkStackName and HeadscaleStackName are the stacks' names for a cluster.
func NetworkStackName(cluster string) string   { return "HeadnatNetwork-" + cluster }
func HeadscaleStackName(cluster string) string { return "HeadnatHeadscale-" + cluster }

// PlatformStackName is the platform stack's name for a cluster.
func PlatformStackName(cluster string) string { return "HeadnatPlatform-" + cluster }

func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
