package headscale

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdlm"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsroute53"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/headnat/headnat/cdk/natfleet"
)

// SecurityGroupDescription starts the description of the server's security group; the
// project's cfn-guard rules open 443/tcp, 3478/udp and 80/tcp to the internet only on groups
// whose description starts with it.
const SecurityGroupDescription = "headscale server"

// DataDevice is the data volume's attachment device name (on Nitro it shows up as NVMe; the
// user data finds it by the volume id).
const DataDevice = "/dev/sdf"

// HeadscaleServer is one headscale control server.
type HeadscaleServer interface {
	constructs.Construct
	Instance() awsec2.Instance
	SecurityGroup() awsec2.SecurityGroup
	Role() awsiam.Role
	// Volume is the data volume (/var/lib/headscale).
	Volume() awsec2.Volume
	Eip() awsec2.CfnEIP
	// PublicIP is the Elastic IP's address (a token).
	PublicIP() *string
	// URL is https://Domain, what the NAT instances and admins log in to.
	URL() string
	// SnapshotPolicy is the DLM policy of the data volume.
	SnapshotPolicy() awsdlm.CfnLifecyclePolicy
	// LogGroup is nil with NoLogGroup.
	LogGroup() awslogs.LogGroup
}

type server struct {
	constructs.Construct
	instance awsec2.Instance
	sg       awsec2.SecurityGroup
	role     awsiam.Role
	volume   awsec2.Volume
	eip      awsec2.CfnEIP
	url      string
	dlm      awsdlm.CfnLifecyclePolicy
	logs     awslogs.LogGroup
}

func (s *server) Instance() awsec2.Instance                 { return s.instance }
func (s *server) SecurityGroup() awsec2.SecurityGroup       { return s.sg }
func (s *server) Role() awsiam.Role                         { return s.role }
func (s *server) Volume() awsec2.Volume                     { return s.volume }
func (s *server) Eip() awsec2.CfnEIP                        { return s.eip }
func (s *server) PublicIP() *string                         { return s.eip.AttrPublicIp() }
func (s *server) URL() string                               { return s.url }
func (s *server) SnapshotPolicy() awsdlm.CfnLifecyclePolicy { return s.dlm }
func (s *server) LogGroup() awslogs.LogGroup                { return s.logs }

// NewHeadscaleServer creates the server. Invalid props panic with the error of Validate, as
// CDK constructs throw, before anything is created; call props.Validate first for an error.
func NewHeadscaleServer(scope constructs.Construct, id string, props *HeadscaleServerProps) HeadscaleServer {
	if err := props.Validate(); err != nil {
		panic(err)
	}
	p := props.withDefaults()
	pol, err := renderPolicy(p)
	if err != nil {
		panic(fmt.Errorf("headscale: %w", err))
	}
	public := p.Vpc.SelectSubnets(&awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PUBLIC}).Subnets
	if public == nil || len(*public) == 0 {
		panic(fmt.Errorf("headscale: the VPC has no public subnets to put the server in"))
	}
	subnet := (*public)[0]

	s := &server{url: "https://" + p.Domain}
	constructs.NewConstruct_Override(s, scope, &id)
	stack := awscdk.Stack_Of(s)
	// The data volume's tag value: unique per server, static (DLM targets tags by value).
	volumeTag := p.Name + "-" + *s.Node().Addr()

	s.sg = awsec2.NewSecurityGroup(s, jsii.String("SecurityGroup"), &awsec2.SecurityGroupProps{
		Vpc:              p.Vpc,
		Description:      jsii.String(SecurityGroupDescription + " " + p.Name + ": control plane, embedded DERP, STUN"),
		AllowAllOutbound: jsii.Bool(true),
	})
	s.sg.AddIngressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(443)),
		jsii.String("headscale: control plane and embedded DERP (HTTPS)"), nil)
	s.sg.AddIngressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Udp(jsii.Number(STUNPort)),
		jsii.String("headscale: STUN of the embedded DERP"), nil)
	if p.ACME() && p.AcmeChallenge == ChallengeHTTP01 {
		s.sg.AddIngressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(80)),
			jsii.String("headscale: ACME HTTP-01 challenge"), nil)
	}

	s.role = awsiam.NewRole(s, jsii.String("Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("ec2.amazonaws.com"), nil),
		Description: jsii.String("headscale server " + p.Name + ": SSM Session Manager" + map[bool]string{true: "", false: ", its TLS certificate in SSM"}[p.ACME()]),
		// Session Manager, for the admins (headscale users/preauthkeys); no SSH.
		ManagedPolicies: &[]awsiam.IManagedPolicy{
			awsiam.ManagedPolicy_FromAwsManagedPolicyName(jsii.String("AmazonSSMManagedInstanceCore")),
		},
	})
	if !p.ACME() {
		s.role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("TLSCertificate"),
			Actions:   jsii.Strings("ssm:GetParameter"),
			Resources: &[]*string{paramARN(stack, p.CertSSMParameter), paramARN(stack, p.KeySSMParameter)},
		}))
	}

	s.volume = awsec2.NewVolume(s, jsii.String("Data"), &awsec2.VolumeProps{
		AvailabilityZone: subnet.AvailabilityZone(),
		Size:             awscdk.Size_Gibibytes(jsii.Number(p.DataVolumeGiB)),
		VolumeType:       awsec2.EbsDeviceVolumeType_GP3,
		Encrypted:        jsii.Bool(true),
		RemovalPolicy:    map[bool]awscdk.RemovalPolicy{true: awscdk.RemovalPolicy_RETAIN, false: awscdk.RemovalPolicy_SNAPSHOT}[p.RetainDataVolume],
	})
	awscdk.Tags_Of(s.volume).Add(jsii.String(DataVolumeTag), jsii.String(volumeTag), nil)
	awscdk.Tags_Of(s.volume).Add(jsii.String("Name"), jsii.String(p.Name+"-data"), nil)

	ud := awsec2.UserData_ForLinux(nil)
	ud.AddCommands(UserDataCommands(p, string(pol), *s.volume.VolumeId())...)

	s.instance = awsec2.NewInstance(s, jsii.String("Instance"), &awsec2.InstanceProps{
		Vpc:           p.Vpc,
		VpcSubnets:    &awsec2.SubnetSelection{Subnets: &[]awsec2.ISubnet{subnet}},
		InstanceType:  awsec2.NewInstanceType(jsii.String(p.InstanceType)),
		MachineImage:  natfleet.MachineImage(p.AmiID, p.AmiSSMParameter),
		SecurityGroup: s.sg,
		Role:          s.role,
		UserData:      ud,
		// IMDSv2 only, one hop: a container on the server cannot reach the role's credentials.
		HttpTokens:                      awsec2.HttpTokens_REQUIRED,
		HttpPutResponseHopLimit:         jsii.Number(1),
		HttpEndpoint:                    jsii.Bool(true),
		CreditSpecification:             creditSpec(p.InstanceType),
		BlockDevices:                    natfleet.RootVolume(p.RootDevice, p.RootVolumeGiB),
		PropagateTagsToVolumeOnCreation: jsii.Bool(true),
		InstanceName:                    jsii.String(p.Name),
	})

	awsec2.NewCfnVolumeAttachment(s, jsii.String("DataAttachment"), &awsec2.CfnVolumeAttachmentProps{
		InstanceId: s.instance.InstanceId(),
		VolumeId:   s.volume.VolumeId(),
		Device:     jsii.String(DataDevice),
	})

	s.eip = awsec2.NewCfnEIP(s, jsii.String("Eip"), &awsec2.CfnEIPProps{
		Domain: jsii.String("vpc"),
		Tags:   &[]*awscdk.CfnTag{{Key: jsii.String("Name"), Value: jsii.String(p.Name)}},
	})
	awsec2.NewCfnEIPAssociation(s, jsii.String("EipAssociation"), &awsec2.CfnEIPAssociationProps{
		AllocationId: s.eip.AttrAllocationId(),
		InstanceId:   s.instance.InstanceId(),
	})

	if p.HostedZoneID != "" {
		zone := awsroute53.HostedZone_FromHostedZoneAttributes(s, jsii.String("Zone"), &awsroute53.HostedZoneAttributes{
			HostedZoneId: jsii.String(p.HostedZoneID),
			ZoneName:     jsii.String(strings.TrimSuffix(p.HostedZoneName, ".")),
		})
		awsroute53.NewARecord(s, jsii.String("Record"), &awsroute53.ARecordProps{
			Zone:       zone,
			RecordName: jsii.String(p.Domain + "."),
			Target:     awsroute53.RecordTarget_FromIpAddresses(s.eip.AttrPublicIp()),
			Ttl:        awscdk.Duration_Minutes(jsii.Number(5)),
		})
	}

	s.dlm = newSnapshotPolicy(s, p, volumeTag)

	if !p.NoLogGroup {
		s.logs = awslogs.NewLogGroup(s, jsii.String("Logs"), &awslogs.LogGroupProps{
			LogGroupName:  jsii.String("/headnat/headscale/" + p.Name),
			Retention:     p.LogRetention,
			RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
		})
	}
	awscdk.Tags_Of(s).Add(jsii.String("headnat:headscale"), jsii.String(p.Name), nil)
	return s
}

// newSnapshotPolicy snapshots the data volume daily and keeps SnapshotsKept snapshots.
func newSnapshotPolicy(scope constructs.Construct, p HeadscaleServerProps, volumeTag string) awsdlm.CfnLifecyclePolicy {
	role := awsiam.NewRole(scope, jsii.String("SnapshotRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("dlm.amazonaws.com"), nil),
		Description: jsii.String("DLM: snapshots of headscale server " + p.Name + "'s data volume"),
		ManagedPolicies: &[]awsiam.IManagedPolicy{
			awsiam.ManagedPolicy_FromAwsManagedPolicyName(jsii.String("service-role/AWSDataLifecycleManagerServiceRole")),
		},
	})
	return awsdlm.NewCfnLifecyclePolicy(scope, jsii.String("Snapshots"), &awsdlm.CfnLifecyclePolicyProps{
		Description:      jsii.String("headscale " + p.Name + " data daily"),
		State:            jsii.String("ENABLED"),
		ExecutionRoleArn: role.RoleArn(),
		PolicyDetails: &awsdlm.CfnLifecyclePolicy_PolicyDetailsProperty{
			PolicyType:    jsii.String("EBS_SNAPSHOT_MANAGEMENT"),
			ResourceTypes: jsii.Strings("VOLUME"),
			TargetTags:    &[]*awscdk.CfnTag{{Key: jsii.String(DataVolumeTag), Value: jsii.String(volumeTag)}},
			Schedules: &[]*awsdlm.CfnLifecyclePolicy_ScheduleProperty{{
				Name:     jsii.String("daily"),
				CopyTags: jsii.Bool(true),
				CreateRule: &awsdlm.CfnLifecyclePolicy_CreateRuleProperty{
					Interval:     jsii.Number(24),
					IntervalUnit: jsii.String("HOURS"),
					Times:        jsii.Strings(p.SnapshotTime),
				},
				RetainRule: &awsdlm.CfnLifecyclePolicy_RetainRuleProperty{Count: jsii.Number(p.SnapshotsKept)},
			}},
		},
	})
}

// paramARN is the ARN of an SSM parameter of this stack's account and region.
func paramARN(stack awscdk.Stack, name string) *string {
	return awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String("arn:"), stack.Partition(), jsii.String(":ssm:"), stack.Region(),
		jsii.String(":"), stack.Account(), jsii.String(":parameter/" + strings.TrimPrefix(name, "/")),
	})
}

// creditSpec: standard CPU credits for burstable types (no surplus charges).
func creditSpec(instanceType string) awsec2.CpuCredits {
	if natfleet.IsBurstable(instanceType) {
		return awsec2.CpuCredits_STANDARD
	}
	return ""
}

// UserDataCommands mount the data volume (formatting it only when blank), write headscale's
// configuration, policy and unit, and start it. volumeID may be a token. No secret.
func UserDataCommands(p HeadscaleServerProps, policy, volumeID string) []*string {
	cmds := []string{
		"set -euo pipefail",
		"command -v " + Binary + " >/dev/null || { echo 'headscale: " + Binary + " missing from the AMI' >&2; exit 1; }",
		// The headnat AMI boots a NAT: this instance is none, so its agent and tailscaled stay
		// off; Session Manager is how admins reach it.
		"systemctl disable --now headnat.service tailscaled.service",
		"systemctl enable --now amazon-ssm-agent.service || echo 'headscale: no amazon-ssm-agent on the AMI: Session Manager cannot reach this server' >&2",
		// The attachment is created after the instance: wait for the volume (NVMe serial = id).
		"vol=" + volumeID,
		`dev=/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${vol//-/}`,
		`for _ in $(seq 1 600); do [ -e "$dev" ] && break; sleep 1; done`,
		`[ -e "$dev" ] || { echo "headscale: data volume $vol not attached" >&2; exit 1; }`,
		`blkid "$dev" >/dev/null 2>&1 || mkfs.ext4 -q -L headscale-data "$dev"`,
		"install -d -m 0755 " + DataDir,
		`grep -q ' ` + DataDir + ` ' /etc/fstab || echo "UUID=$(blkid -s UUID -o value "$dev") ` + DataDir + ` ext4 defaults,nofail 0 2" >>/etc/fstab`,
		"mountpoint -q " + DataDir + " || mount " + DataDir,
		"getent passwd headscale >/dev/null || useradd --system --home-dir " + DataDir + " --shell /usr/sbin/nologin headscale",
		"chown headscale:headscale " + DataDir + " && chmod 0750 " + DataDir,
		"install -d -m 0755 " + ConfigDir,
		"cat >" + ConfigPath + " <<'HEADSCALE_EOF'\n" + ServerConfig(p) + "HEADSCALE_EOF",
		"cat >" + PolicyPath + " <<'HEADSCALE_EOF'\n" + strings.TrimRight(policy, "\n") + "\nHEADSCALE_EOF",
		"chmod 0644 " + ConfigPath + " " + PolicyPath,
	}
	if !p.ACME() {
		cmds = append(cmds,
			"install -d -m 0755 "+FetchTLS[:strings.LastIndex(FetchTLS, "/")],
			"cat >"+FetchTLS+" <<'HEADSCALE_EOF'\n"+fetchScript(p)+"HEADSCALE_EOF",
			"chmod 0755 "+FetchTLS,
		)
	}
	cmds = append(cmds,
		"cat >/etc/systemd/system/headscale.service <<'HEADSCALE_EOF'\n"+unit(p)+"HEADSCALE_EOF",
		"systemctl daemon-reload",
		"systemctl enable headscale.service",
		"systemctl restart headscale.service",
	)
	return *jsii.Strings(cmds...)
}
