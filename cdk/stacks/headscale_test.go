package stacks

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/headnat/headnat/cdk/headscale"
	"github.com/headnat/headnat/cdk/internal/cdktest"
)

func headscaleServerProps() headscale.HeadscaleServerProps {
	return headscale.HeadscaleServerProps{
		Domain:          "hs.example.com",
		AmiSSMParameter: "/headnat/ami/arm64",
		VpcCIDRs:        []string{DefaultVpcCIDR},
		Admins:          []string{"alice@"},
	}
}

// networkAndHeadscale builds the network stack and a headscale stack on its VPC.
func networkAndHeadscale(t *testing.T, edit func(*headscale.HeadscaleServerProps)) (NetworkStack, HeadscaleStack) {
	t.Helper()
	app := awscdk.NewApp(nil)
	net := NewNetworkStack(app, "Net", fullProps())
	sp := headscaleServerProps()
	if edit != nil {
		edit(&sp)
	}
	hs := NewHeadscaleStack(app, "Headscale", &HeadscaleStackProps{Vpc: net.Vpc(), Server: sp})
	return net, hs
}

// GIVEN the network stack's VPC WHEN the headscale stack is built on it THEN it is
// environment-agnostic, imports the VPC, and outputs the URL and the Elastic IP.
func TestHeadscaleStack(t *testing.T) {
	_, hs := networkAndHeadscale(t, nil)
	if !*awscdk.Token_IsUnresolved(hs.Region()) || !*awscdk.Token_IsUnresolved(hs.Account()) {
		t.Errorf("region %s, account %s: want unresolved", *hs.Region(), *hs.Account())
	}
	tmpl := assertions.Template_FromStack(hs, nil)
	cdktest.Assert(t, "URL output", func() {
		tmpl.HasOutput(jsii.String(OutputHeadscaleURL), map[string]any{"Value": "https://hs.example.com"})
	})
	cdktest.Assert(t, "EIP output", func() {
		tmpl.HasOutput(jsii.String(OutputHeadscaleIP), map[string]any{
			"Value": map[string]any{"Fn::GetAtt": []any{assertions.Match_StringLikeRegexp(jsii.String("HeadscaleEip")), "PublicIp"}},
		})
	})
	inst := cdktest.Resources(t, tmpl, "AWS::EC2::Instance")
	if len(inst) != 1 || !strings.Contains(cdktest.JSON(inst[0].Properties["SubnetId"]), "Fn::ImportValue") {
		t.Errorf("instances %v: want one, in the network stack's public subnet", inst)
	}
	cdktest.Assert(t, "AMI parameter", func() {
		tmpl.HasParameter(jsii.String("*"), map[string]any{
			"Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>", "Default": "/headnat/ami/arm64",
		})
	})
	if hs.Server() == nil || hs.Server().URL() != "https://hs.example.com" {
		t.Errorf("Server() = %v", hs.Server())
	}
}

// GIVEN bad headscale stack props WHEN validated THEN one error naming the property.
func TestHeadscaleStackPropsValidation(t *testing.T) {
	app := awscdk.NewApp(nil)
	net := NewNetworkStack(app, "Net", fullProps())
	for name, c := range map[string]struct {
		props *HeadscaleStackProps
		want  string
	}{
		"nil":                    {nil, "no props"},
		"no VPC":                 {&HeadscaleStackProps{Server: headscaleServerProps()}, "Vpc is required"},
		"cross-stack, no CIDRs":  {&HeadscaleStackProps{Vpc: net.Vpc(), Server: func() headscale.HeadscaleServerProps { p := headscaleServerProps(); p.VpcCIDRs = nil; return p }()}, "VpcCIDRs is required"},
		"server: missing domain": {&HeadscaleStackProps{Vpc: net.Vpc(), Server: func() headscale.HeadscaleServerProps { p := headscaleServerProps(); p.Domain = ""; return p }()}, "Domain is required"},
	} {
		t.Run(name, func(t *testing.T) {
			err := c.props.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate() = %v, want an error about %q", err, c.want)
			}
		})
	}
	if err := (&HeadscaleStackProps{Vpc: net.Vpc(), Server: headscaleServerProps()}).Validate(); err != nil {
		t.Errorf("good props: %v", err)
	}
}

// cfnGuard returns the cfn-guard binary and the arguments that run headnat.guard and the
// Control Tower rules of control-tower.txt (as make test-cdk), or skips without it.
func cfnGuard(t *testing.T) (bin string, args []string) {
	t.Helper()
	pkg, _ := filepath.Abs("../node_modules/@cdklabs/cdk-validator-cfnguard")
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	bin = filepath.Join(pkg, "bin", "ubuntu", arch, "cfn-guard")
	if _, err := os.Stat(bin); err != nil {
		t.Skip("no cfn-guard (npm ci in cdk/)")
	}
	list, err := os.ReadFile("../guard/control-tower.txt")
	if err != nil {
		t.Fatal(err)
	}
	args = []string{"validate", "-S", "fail", "-r", "../guard/headnat.guard"}
	for _, l := range strings.Split(string(list), "\n") {
		if f := strings.Fields(strings.SplitN(l, "#", 2)[0]); len(f) > 0 {
			args = append(args, "-r", filepath.Join(pkg, "rules", "control-tower", "cfn-guard", f[0]))
		}
	}
	return bin, args
}

// GIVEN the headscale stack's template (ACME TLS-ALPN-01, HTTP-01, certificate) and the network
// stack's WHEN cfn-guard runs headnat.guard and the chosen Control Tower rules THEN they pass.
func TestHeadscaleStackPassesCfnGuard(t *testing.T) {
	bin, args := cfnGuard(t)
	for name, edit := range map[string]func(*headscale.HeadscaleServerProps){
		"acme":    nil,
		"http-01": func(p *headscale.HeadscaleServerProps) { p.AcmeChallenge = headscale.ChallengeHTTP01 },
		"cert":    func(p *headscale.HeadscaleServerProps) { p.CertSSMParameter, p.KeySSMParameter = "/hs/cert", "/hs/key" },
	} {
		t.Run(name, func(t *testing.T) {
			net, hs := networkAndHeadscale(t, edit)
			dir := t.TempDir()
			// The network stack's template too: the headscale rules must not loosen its own.
			for _, st := range []awscdk.Stack{hs, net} {
				b, err := json.Marshal(assertions.Template_FromStack(st, nil).ToJSON())
				if err != nil {
					t.Fatal(err)
				}
				f := filepath.Join(dir, *st.StackName()+".template.json")
				if err := os.WriteFile(f, b, 0o644); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(bin, append(args, "-d", f)...).CombinedOutput()
				if err != nil {
					t.Errorf("cfn-guard on %s: %v\n%s", *st.StackName(), err, out)
				}
			}
		})
	}
}
