package headscale

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/jsii-runtime-go"

	"github.com/headnat/headnat/cdk/internal/cdktest"
)

func TestMain(m *testing.M) { cdktest.Main(m) }

func newVpc(stack awscdk.Stack) awsec2.Vpc {
	return awsec2.NewVpc(stack, jsii.String("Vpc"), &awsec2.VpcProps{
		MaxAzs:      jsii.Number(2),
		NatGateways: jsii.Number(0),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{
			{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC},
			{Name: jsii.String("private"), SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED},
		},
	})
}

func baseProps(vpc awsec2.IVpc) *HeadscaleServerProps {
	return &HeadscaleServerProps{Vpc: vpc, Domain: "hs.example.com", AmiSSMParameter: "/headnat/ami/arm64",
		VpcCIDRs: []string{"10.0.0.0/16"}, Admins: []string{"alice@", "bob@example.com"}}
}

// synth builds a server in a fresh 2-AZ VPC; edit changes the default props first.
func synth(t *testing.T, edit func(*HeadscaleServerProps)) (assertions.Template, HeadscaleServer, *HeadscaleServerProps) {
	t.Helper()
	app := awscdk.NewApp(nil)
	stack := awscdk.NewStack(app, jsii.String("Test"), nil)
	p := baseProps(newVpc(stack))
	if edit != nil {
		edit(p)
	}
	s := NewHeadscaleServer(stack, "Headscale", p)
	return assertions.Template_FromStack(stack, nil), s, p
}

func one(t *testing.T, tmpl assertions.Template, typ string) cdktest.Resource {
	t.Helper()
	rs := cdktest.Resources(t, tmpl, typ)
	if len(rs) != 1 {
		t.Fatalf("%d %s, want 1", len(rs), typ)
	}
	return rs[0]
}

// userData returns the instance's user data with intrinsic functions rendered as JSON.
func userData(t *testing.T, tmpl assertions.Template) string {
	t.Helper()
	ud, _ := one(t, tmpl, "AWS::EC2::Instance").Properties["UserData"].(map[string]any)
	b64, _ := ud["Fn::Base64"].(map[string]any)
	join, _ := b64["Fn::Join"].([]any)
	if len(join) != 2 {
		t.Fatalf("user data is not a Fn::Join: %s", cdktest.JSON(ud))
	}
	var s strings.Builder
	for _, x := range cdktest.List(join[1]) {
		if str, ok := x.(string); ok {
			s.WriteString(str)
		} else {
			s.WriteString(cdktest.JSON(x))
		}
	}
	return s.String()
}

// raw is the template's Resources section.
func raw(tmpl assertions.Template) map[string]any {
	return (*tmpl.ToJSON())["Resources"].(map[string]any)
}

type ingress struct {
	proto string
	port  string
}

func openIngress(t *testing.T, tmpl assertions.Template) []ingress {
	t.Helper()
	if n := len(cdktest.Resources(t, tmpl, "AWS::EC2::SecurityGroupIngress")); n != 0 {
		t.Errorf("%d standalone ingress rules, want none", n)
	}
	var out []ingress
	for _, r := range cdktest.List(one(t, tmpl, "AWS::EC2::SecurityGroup").Properties["SecurityGroupIngress"]) {
		m := r.(map[string]any)
		if m["CidrIp"] != "0.0.0.0/0" || m["CidrIpv6"] != nil || m["SourceSecurityGroupId"] != nil {
			t.Errorf("ingress %s: want only rules from 0.0.0.0/0", cdktest.JSON(m))
		}
		if fmt.Sprint(m["FromPort"]) != fmt.Sprint(m["ToPort"]) {
			t.Errorf("ingress %s: a port range", cdktest.JSON(m))
		}
		out = append(out, ingress{fmt.Sprint(m["IpProtocol"]), fmt.Sprint(m["FromPort"])})
	}
	slices.SortFunc(out, func(a, b ingress) int { return strings.Compare(a.proto+a.port, b.proto+b.port) })
	return out
}

// GIVEN the default server (ACME) WHEN synthesized THEN its security and cost invariants hold.
func TestServerDefaults(t *testing.T) {
	tmpl, s, p := synth(t, nil)

	t.Run("on-demand arm64 t4g.micro, IMDSv2 hop limit 1, no SSH key, encrypted gp3 root, standard credits", func(t *testing.T) {
		in := one(t, tmpl, "AWS::EC2::Instance").Properties
		md, _ := in["MetadataOptions"].(map[string]any)
		if md["HttpTokens"] != "required" || fmt.Sprint(md["HttpPutResponseHopLimit"]) != "1" {
			t.Errorf("metadata options %v: want IMDSv2 required, hop limit 1", md)
		}
		if in["KeyName"] != nil || in["InstanceType"] != "t4g.micro" {
			t.Errorf("KeyName %v, InstanceType %v: want no key, t4g.micro", in["KeyName"], in["InstanceType"])
		}
		if cs, _ := in["CreditSpecification"].(map[string]any); cs["CPUCredits"] != "standard" {
			t.Errorf("credit specification %v", in["CreditSpecification"])
		}
		for _, b := range cdktest.List(in["BlockDeviceMappings"]) {
			ebs, _ := b.(map[string]any)["Ebs"].(map[string]any)
			if ebs["Encrypted"] != true || ebs["VolumeType"] != "gp3" {
				t.Errorf("root volume %v: want encrypted gp3", ebs)
			}
		}
		if len(cdktest.List(in["BlockDeviceMappings"])) != 1 {
			t.Errorf("block devices %v: want the root volume only", in["BlockDeviceMappings"])
		}
		// Spot would come through a launch template's market options, or a fleet.
		for _, typ := range []string{"AWS::EC2::LaunchTemplate", "AWS::EC2::SpotFleet", "AWS::EC2::EC2Fleet", "AWS::AutoScaling::AutoScalingGroup"} {
			cdktest.Assert(t, typ, func() { tmpl.ResourceCountIs(jsii.String(typ), jsii.Number(0)) })
		}
		if img := cdktest.JSON(in["ImageId"]); !strings.Contains(img, "SsmParameterValue") {
			t.Errorf("ImageId %s: want the SSM parameter, resolved at deploy time", img)
		}
	})

	t.Run("only 443/tcp and 3478/udp from the internet: no SSH, no 80", func(t *testing.T) {
		got := openIngress(t, tmpl)
		want := []ingress{{"tcp", "443"}, {"udp", "3478"}}
		if !slices.Equal(got, want) {
			t.Errorf("ingress %v, want %v", got, want)
		}
		sg := one(t, tmpl, "AWS::EC2::SecurityGroup").Properties
		if d, _ := sg["GroupDescription"].(string); !strings.HasPrefix(d, SecurityGroupDescription+" ") {
			t.Errorf("description %q: cfn-guard recognises the headscale group by its prefix %q", d, SecurityGroupDescription)
		}
	})

	t.Run("encrypted gp3 data volume, snapshot on deletion, attached to the instance", func(t *testing.T) {
		inst, v := one(t, tmpl, "AWS::EC2::Instance"), one(t, tmpl, "AWS::EC2::Volume")
		vol := raw(tmpl)[v.ID].(map[string]any)
		props := v.Properties
		if props["Encrypted"] != true || props["VolumeType"] != "gp3" || fmt.Sprint(props["Size"]) != "8" {
			t.Errorf("data volume %s: want encrypted gp3 8 GiB", cdktest.JSON(props))
		}
		if vol["DeletionPolicy"] != "Snapshot" || vol["UpdateReplacePolicy"] != "Snapshot" {
			t.Errorf("data volume policies %v/%v: want Snapshot", vol["DeletionPolicy"], vol["UpdateReplacePolicy"])
		}
		if az1, az2 := cdktest.JSON(props["AvailabilityZone"]), cdktest.JSON(inst.Properties["AvailabilityZone"]); az1 != az2 {
			t.Errorf("volume in %s, instance in %s", az1, az2)
		}
		att := one(t, tmpl, "AWS::EC2::VolumeAttachment").Properties
		if cdktest.JSON(att["InstanceId"]) != cdktest.JSON(map[string]any{"Ref": inst.ID}) ||
			cdktest.JSON(att["VolumeId"]) != cdktest.JSON(map[string]any{"Ref": v.ID}) {
			t.Errorf("attachment %s: want %s on %s", cdktest.JSON(att), v.ID, inst.ID)
		}
	})

	t.Run("daily DLM snapshots of exactly the data volume, 7 kept, own DLM role", func(t *testing.T) {
		pol := one(t, tmpl, "AWS::DLM::LifecyclePolicy").Properties
		d := pol["PolicyDetails"].(map[string]any)
		vtags := cdktest.Tags(one(t, tmpl, "AWS::EC2::Volume").Properties["Tags"])
		targets := cdktest.Tags(d["TargetTags"])
		if len(targets) != 1 || targets[DataVolumeTag] == "" || targets[DataVolumeTag] != vtags[DataVolumeTag] {
			t.Errorf("target tags %v, volume tags %v: want the volume's %s", targets, vtags, DataVolumeTag)
		}
		sch := cdktest.List(d["Schedules"])
		if len(sch) != 1 || pol["State"] != "ENABLED" {
			t.Fatalf("schedules %s, state %v", cdktest.JSON(sch), pol["State"])
		}
		cr := sch[0].(map[string]any)["CreateRule"].(map[string]any)
		rr := sch[0].(map[string]any)["RetainRule"].(map[string]any)
		if fmt.Sprint(cr["Interval"]) != "24" || cr["IntervalUnit"] != "HOURS" || cdktest.JSON(cr["Times"]) != `["03:00"]` {
			t.Errorf("create rule %s: want daily at 03:00", cdktest.JSON(cr))
		}
		if fmt.Sprint(rr["Count"]) != "7" {
			t.Errorf("retain rule %s: want 7", cdktest.JSON(rr))
		}
		roleRef := cdktest.JSON(pol["ExecutionRoleArn"])
		for _, r := range cdktest.Resources(t, tmpl, "AWS::IAM::Role") {
			if !strings.Contains(roleRef, `"`+r.ID+`"`) {
				continue
			}
			if s := cdktest.JSON(r.Properties); !strings.Contains(s, "dlm.amazonaws.com") ||
				!strings.Contains(s, "service-role/AWSDataLifecycleManagerServiceRole") || strings.Contains(s, "ec2.amazonaws.com") {
				t.Errorf("DLM role %s", s)
			}
			return
		}
		t.Errorf("no role for %s", roleRef)
	})

	t.Run("an Elastic IP associated with the instance", func(t *testing.T) {
		eip, inst := one(t, tmpl, "AWS::EC2::EIP"), one(t, tmpl, "AWS::EC2::Instance")
		a := one(t, tmpl, "AWS::EC2::EIPAssociation").Properties
		if cdktest.JSON(a["InstanceId"]) != cdktest.JSON(map[string]any{"Ref": inst.ID}) ||
			cdktest.JSON(a["AllocationId"]) != cdktest.JSON(map[string]any{"Fn::GetAtt": []string{eip.ID, "AllocationId"}}) {
			t.Errorf("association %s", cdktest.JSON(a))
		}
		cdktest.Assert(t, "no DNS record without a zone", func() { tmpl.ResourceCountIs(jsii.String("AWS::Route53::RecordSet"), jsii.Number(0)) })
	})

	t.Run("instance role: Session Manager only, no inline permission with ACME", func(t *testing.T) {
		cdktest.Assert(t, "no inline policy", func() { tmpl.ResourceCountIs(jsii.String("AWS::IAM::Policy"), jsii.Number(0)) })
		cdktest.Assert(t, "SSM core", func() {
			tmpl.HasResourceProperties(jsii.String("AWS::IAM::Role"), &map[string]any{
				"AssumeRolePolicyDocument": assertions.Match_ObjectLike(&map[string]any{
					"Statement": []any{assertions.Match_ObjectLike(&map[string]any{"Principal": map[string]any{"Service": "ec2.amazonaws.com"}})},
				}),
				"ManagedPolicyArns": []any{assertions.Match_ObjectLike(&map[string]any{
					"Fn::Join": []any{"", []any{"arn:", map[string]any{"Ref": "AWS::Partition"}, ":iam::aws:policy/AmazonSSMManagedInstanceCore"}},
				})},
			})
		})
	})

	t.Run("user data: server_url, ACME TLS-ALPN-01, the rendered policy, no secret", func(t *testing.T) {
		ud := userData(t, tmpl)
		pol, err := renderPolicy(p.withDefaults())
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			`server_url: "https://hs.example.com"`, "listen_addr: 0.0.0.0:443",
			`tls_letsencrypt_hostname: "hs.example.com"`, "tls_letsencrypt_challenge_type: TLS-ALPN-01",
			"stun_listen_addr: 0.0.0.0:3478", "mode: file", "v6: fd7a:115c:a1e0::/48",
			"probe_interval: 2s", "batch_change_delay: 100ms",
			string(pol), `"group:admins": ["alice@","bob@example.com"]`, `"10.0.0.0/16": ["tag:nat"]`,
			"systemctl restart headscale.service", "blkid", "ExecStart=" + Binary + " -c " + ConfigPath + " serve",
			"User=headscale", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
			"systemctl disable --now headnat.service tailscaled.service", "systemctl enable --now amazon-ssm-agent.service",
		} {
			if !strings.Contains(ud, want) {
				t.Errorf("user data lacks %q", want)
			}
		}
		for _, bad := range []string{"tls_cert_path", "aws ssm", "PRIVATE KEY", "tskey", "preauthkey", "mkfs.ext4 -F"} {
			if strings.Contains(ud, bad) {
				t.Errorf("user data contains %q", bad)
			}
		}
		if !strings.Contains(ud, `blkid "$dev" >/dev/null 2>&1 || mkfs`) {
			t.Errorf("the data volume must be formatted only when blank")
		}
	})

	t.Run("log group with retention, getters", func(t *testing.T) {
		cdktest.Assert(t, "log group", func() {
			tmpl.HasResourceProperties(jsii.String("AWS::Logs::LogGroup"), &map[string]any{"RetentionInDays": 14, "LogGroupName": "/headnat/headscale/headscale"})
		})
		if s.URL() != "https://hs.example.com" || s.Instance() == nil || s.SecurityGroup() == nil || s.Role() == nil ||
			s.Volume() == nil || s.Eip() == nil || s.PublicIP() == nil || s.SnapshotPolicy() == nil || s.LogGroup() == nil {
			t.Errorf("a getter returns nothing")
		}
	})
}

// GIVEN HTTP-01 WHEN synthesized THEN port 80 opens too, and the config says HTTP-01.
func TestACMEHTTP01(t *testing.T) {
	tmpl, _, _ := synth(t, func(p *HeadscaleServerProps) { p.AcmeChallenge = ChallengeHTTP01; p.AcmeEmail = "ops@example.com" })
	if got, want := openIngress(t, tmpl), []ingress{{"tcp", "443"}, {"tcp", "80"}, {"udp", "3478"}}; !slices.Equal(got, want) {
		t.Errorf("ingress %v, want %v", got, want)
	}
	ud := userData(t, tmpl)
	for _, want := range []string{"tls_letsencrypt_challenge_type: HTTP-01", `acme_email: "ops@example.com"`, `tls_letsencrypt_listen: ":http"`} {
		if !strings.Contains(ud, want) {
			t.Errorf("user data lacks %q", want)
		}
	}
}

// GIVEN a certificate in SSM and a hosted zone WHEN synthesized THEN the role reads exactly
// the two parameters, the user data names them and fetches them into files only, no ACME.
func TestConfiguredCertificate(t *testing.T) {
	tmpl, _, _ := synth(t, func(p *HeadscaleServerProps) {
		p.CertSSMParameter, p.KeySSMParameter = "/headscale/tls/cert", "/headscale/tls/key"
		p.HostedZoneID, p.HostedZoneName = "Z0123456789ABC", "example.com."
	})
	pol := one(t, tmpl, "AWS::IAM::Policy").Properties["PolicyDocument"].(map[string]any)
	sts := cdktest.List(pol["Statement"])
	if len(sts) != 1 {
		t.Fatalf("statements %s: want one", cdktest.JSON(sts))
	}
	st := sts[0].(map[string]any)
	res := cdktest.List(st["Resource"])
	if cdktest.JSON(st["Action"]) != `"ssm:GetParameter"` || len(res) != 2 || st["Condition"] != nil {
		t.Fatalf("statement %s: want ssm:GetParameter on two ARNs", cdktest.JSON(st))
	}
	for i, name := range []string{"headscale/tls/cert", "headscale/tls/key"} {
		if s := cdktest.JSON(res[i]); !strings.Contains(s, `":ssm:"`) || !strings.HasSuffix(s, `":parameter/`+name+`"]]}`) || strings.Contains(s, "*") {
			t.Errorf("resource %s: want the ARN of parameter /%s", s, name)
		}
	}
	if got, want := openIngress(t, tmpl), []ingress{{"tcp", "443"}, {"udp", "3478"}}; !slices.Equal(got, want) {
		t.Errorf("ingress %v, want %v", got, want)
	}
	ud := userData(t, tmpl)
	for _, want := range []string{"tls_cert_path: " + CertPath, "tls_key_path: " + KeyPath, "ExecStartPre=+" + FetchTLS,
		`get "/headscale/tls/cert" ` + CertPath, `get "/headscale/tls/key" ` + KeyPath, `/usr/local/bin/headnat secret --ssm-parameter "$1" --out "$2" --mode 0640`} {
		if !strings.Contains(ud, want) {
			t.Errorf("user data lacks %q", want)
		}
	}
	if strings.Contains(ud, "tls_letsencrypt") || strings.Contains(ud, "set -x") {
		t.Errorf("user data has ACME settings or traces commands")
	}
	cdktest.Assert(t, "A record on the EIP", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::Route53::RecordSet"), &map[string]any{
			"HostedZoneId": "Z0123456789ABC", "Name": "hs.example.com.", "Type": "A",
			"ResourceRecords": []any{map[string]any{"Fn::GetAtt": []any{assertions.Match_StringLikeRegexp(jsii.String("HeadscaleEip")), "PublicIp"}}},
		})
	})
}

// GIVEN non-default sizes, schedule and retention WHEN synthesized THEN they are used.
func TestOptions(t *testing.T) {
	tmpl, s, _ := synth(t, func(p *HeadscaleServerProps) {
		p.DataVolumeGiB, p.SnapshotsKept, p.SnapshotTime, p.RetainDataVolume = 20, 30, "05:30", true
		p.InstanceType, p.NoLogGroup, p.AmiSSMParameter, p.AmiID = "c7g.medium", true, "", "ami-0123456789abcdef0"
	})
	raw := raw(tmpl)
	v := one(t, tmpl, "AWS::EC2::Volume")
	if fmt.Sprint(v.Properties["Size"]) != "20" || raw[v.ID].(map[string]any)["DeletionPolicy"] != "Retain" {
		t.Errorf("volume %s", cdktest.JSON(raw[v.ID]))
	}
	sch := cdktest.JSON(one(t, tmpl, "AWS::DLM::LifecyclePolicy").Properties["PolicyDetails"])
	if !strings.Contains(sch, `"Count":30`) || !strings.Contains(sch, `"Times":["05:30"]`) {
		t.Errorf("DLM %s", sch)
	}
	in := one(t, tmpl, "AWS::EC2::Instance").Properties
	if in["InstanceType"] != "c7g.medium" || in["CreditSpecification"] != nil || in["ImageId"] != "ami-0123456789abcdef0" {
		t.Errorf("instance %v %v %v", in["InstanceType"], in["CreditSpecification"], in["ImageId"])
	}
	cdktest.Assert(t, "no log group", func() { tmpl.ResourceCountIs(jsii.String("AWS::Logs::LogGroup"), jsii.Number(0)) })
	if s.LogGroup() != nil {
		t.Errorf("LogGroup() with NoLogGroup")
	}
}

// GIVEN bad props WHEN validated THEN one error naming the property; and the constructor
// panics with it before creating anything.
func TestValidate(t *testing.T) {
	app := awscdk.NewApp(nil)
	stack := awscdk.NewStack(app, jsii.String("V"), nil)
	vpc := newVpc(stack)
	cases := []struct {
		name string
		edit func(*HeadscaleServerProps)
		want string
	}{
		{"missing domain", func(p *HeadscaleServerProps) { p.Domain = "" }, "Domain is required"},
		{"URL as domain", func(p *HeadscaleServerProps) { p.Domain = "https://hs.example.com" }, "Domain"},
		{"uppercase domain", func(p *HeadscaleServerProps) { p.Domain = "HS.example.com" }, "Domain"},
		{"single label", func(p *HeadscaleServerProps) { p.Domain = "headscale" }, "Domain"},
		{"empty label", func(p *HeadscaleServerProps) { p.Domain = "hs..example.com" }, "Domain"},
		{"both TLS modes", func(p *HeadscaleServerProps) {
			p.CertSSMParameter, p.KeySSMParameter, p.AcmeEmail = "/c", "/k", "ops@example.com"
		}, "exclude each other"},
		{"both TLS modes (challenge)", func(p *HeadscaleServerProps) {
			p.CertSSMParameter, p.KeySSMParameter, p.AcmeChallenge = "/c", "/k", ChallengeHTTP01
		}, "exclude each other"},
		{"cert without key", func(p *HeadscaleServerProps) { p.CertSSMParameter = "/c" }, "KeySSMParameter"},
		{"key without cert", func(p *HeadscaleServerProps) { p.KeySSMParameter = "/k" }, "CertSSMParameter"},
		{"same parameter", func(p *HeadscaleServerProps) { p.CertSSMParameter, p.KeySSMParameter = "/c", "/c" }, "same parameter"},
		{"relative parameter", func(p *HeadscaleServerProps) { p.CertSSMParameter, p.KeySSMParameter = "c", "/k" }, "CertSSMParameter"},
		{"bad challenge", func(p *HeadscaleServerProps) { p.AcmeChallenge = "DNS-01" }, "AcmeChallenge"},
		{"bad email", func(p *HeadscaleServerProps) { p.AcmeEmail = "ops" }, "AcmeEmail"},
		{"x86 type", func(p *HeadscaleServerProps) { p.InstanceType = "t3.micro" }, "InstanceType"},
		{"no AMI", func(p *HeadscaleServerProps) { p.AmiSSMParameter = "" }, "AmiID and AmiSSMParameter"},
		{"two AMIs", func(p *HeadscaleServerProps) { p.AmiID = "ami-0123456789abcdef0" }, "AmiID and AmiSSMParameter"},
		{"bad AMI id", func(p *HeadscaleServerProps) { p.AmiSSMParameter, p.AmiID = "", "ami-xyz" }, "AmiID"},
		{"zone without name", func(p *HeadscaleServerProps) { p.HostedZoneID = "Z123" }, "HostedZoneName"},
		{"zone not containing the domain", func(p *HeadscaleServerProps) { p.HostedZoneID, p.HostedZoneName = "Z123", "example.org" }, "HostedZoneName"},
		{"suffix is not a zone", func(p *HeadscaleServerProps) { p.HostedZoneID, p.HostedZoneName = "Z123", "ample.com" }, "HostedZoneName"},
		{"bad zone id", func(p *HeadscaleServerProps) { p.HostedZoneID, p.HostedZoneName = "zone", "example.com" }, "HostedZoneID"},
		{"bad name", func(p *HeadscaleServerProps) { p.Name = "Head Scale" }, "Name"},
		{"tiny data volume", func(p *HeadscaleServerProps) { p.DataVolumeGiB = -1 }, "DataVolumeGiB"},
		{"bad snapshot time", func(p *HeadscaleServerProps) { p.SnapshotTime = "3am" }, "SnapshotTime"},
		{"no snapshots kept", func(p *HeadscaleServerProps) { p.SnapshotsKept = -2 }, "SnapshotsKept"},
		{"bad CIDR", func(p *HeadscaleServerProps) { p.VpcCIDRs = []string{"10.0.0.0/33"} }, "VpcCIDRs"},
		{"bad admin", func(p *HeadscaleServerProps) { p.Admins = []string{"alice"} }, "Admins"},
		{"no VPC", func(p *HeadscaleServerProps) { p.Vpc = nil }, "Vpc is required"},
		{"VPC CIDR unknown at synth", func(p *HeadscaleServerProps) { p.VpcCIDRs = nil }, "VpcCIDRs is required"},
	}
	if err := baseProps(vpc).Validate(); err != nil {
		t.Fatalf("the base props: %v", err)
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := baseProps(vpc)
			c.edit(p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "headscale: ") {
				t.Fatalf("Validate() = %v, want an error about %q", err, c.want)
			}
			id := fmt.Sprintf("Bad%d", i)
			r := cdktest.Panics(func() { NewHeadscaleServer(stack, id, p) })
			if e, ok := r.(error); !ok || e.Error() != err.Error() {
				t.Errorf("NewHeadscaleServer panicked with %v, want %v", r, err)
			}
			if stack.Node().TryFindChild(jsii.String(id)) != nil {
				t.Errorf("half-built construct %s left in the stack", id)
			}
		})
	}
	var nilProps *HeadscaleServerProps
	if err := nilProps.Validate(); err == nil {
		t.Errorf("nil props validate")
	}
}

// GIVEN the rendered configurations WHEN the real headscale v0.29.2 checks them (when bin/
// has it) THEN it accepts them.
func TestConfigAcceptedByHeadscale(t *testing.T) {
	bin, _ := filepath.Abs("../../bin/headscale")
	if _, err := os.Stat(bin); err != nil {
		t.Skip("no bin/headscale (make tools builds it)")
	}
	for name, edit := range map[string]func(*HeadscaleServerProps){
		"acme":    nil,
		"http-01": func(p *HeadscaleServerProps) { p.AcmeChallenge, p.AcmeEmail = ChallengeHTTP01, "ops@example.com" },
		"cert":    func(p *HeadscaleServerProps) { p.CertSSMParameter, p.KeySSMParameter = "/c", "/k" },
	} {
		t.Run(name, func(t *testing.T) {
			p := *baseProps(nil)
			if edit != nil {
				edit(&p)
			}
			p = p.withDefaults()
			dir := t.TempDir()
			pol, err := renderPolicy(p)
			if err != nil {
				t.Fatal(err)
			}
			cfg := strings.NewReplacer(DataDir, filepath.Join(dir, "data"), PolicyPath, filepath.Join(dir, "policy.hujson"),
				Socket, filepath.Join(dir, "hs.sock"), "0.0.0.0:443", "127.0.0.1:0", "0.0.0.0:3478", "127.0.0.1:0",
				`":http"`, `"127.0.0.1:0"`).Replace(ServerConfig(p))
			if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "policy.hujson"), pol, 0o600)
			os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o600)
			cmd := exec.Command(bin, "-c", filepath.Join(dir, "config.yaml"), "configtest")
			cmd.Dir, cmd.Env = dir, []string{"HOME=" + dir, "PATH=/usr/bin:/bin"}
			out, err := cmd.CombinedOutput()
			if err != nil || strings.Contains(string(out), "FTL") || strings.Contains(string(out), "ERR") {
				t.Errorf("headscale configtest: %v\n%s\n%s", err, out, cfg)
			}
		})
	}
}
