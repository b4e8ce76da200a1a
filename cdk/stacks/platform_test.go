package stacks

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/headnat/headnat/cdk/internal/cdktest"
	"github.com/headnat/headnat/cdk/platform"
)

const httpOnly = `
log-retention-days: 7
ecr-keep-last: 3
services:
  - {name: web, image: "ecr:v1", cpu: 1024, memory: 3072, port: 8080, paths: ["/*"]}
`

func synthPlatform(t *testing.T, cfg *platform.Config) assertions.Template {
	t.Helper()
	app := awscdk.NewApp(nil)
	network := NewNetworkStack(app, "Network", minimalProps())
	stack := NewPlatformStack(app, "Platform", &PlatformStackProps{Vpc: network.Vpc(), Name: cluster, Config: cfg})
	return assertions.Template_FromStack(stack, nil)
}

func conference(t *testing.T) *platform.Config {
	t.Helper()
	c, err := platform.Load("../examples/conference.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// GIVEN the conference example WHEN synthesized THEN every cost rule of issue 11 holds.
func TestPlatformStackCostRules(t *testing.T) {
	cfg := conference(t)
	tmpl := synthPlatform(t, cfg)
	services := cdktest.Resources(t, tmpl, "AWS::ECS::Service")
	if len(services) != len(cfg.Services) {
		t.Fatalf("%d ECS services, want %d", len(services), len(cfg.Services))
	}

	t.Run("no task has a public IP, all in the private subnets", func(t *testing.T) {
		for _, s := range services {
			vpc, _ := s.Properties["NetworkConfiguration"].(map[string]any)["AwsvpcConfiguration"].(map[string]any)
			if vpc["AssignPublicIp"] != "DISABLED" {
				t.Errorf("%s: AssignPublicIp %v", s.ID, vpc["AssignPublicIp"])
			}
			if subnets := cdktest.JSON(vpc["Subnets"]); !strings.Contains(subnets, "privateSubnet") || strings.Contains(subnets, "publicSubnet") {
				t.Errorf("%s: subnets %s, want the private ones", s.ID, subnets)
			}
		}
	})

	t.Run("every log group has a retention (14 days by default)", func(t *testing.T) {
		groups := cdktest.Resources(t, tmpl, "AWS::Logs::LogGroup")
		if len(groups) != len(cfg.Services) {
			t.Errorf("%d log groups, want one per service", len(groups))
		}
		for _, g := range groups {
			if fmt.Sprint(g.Properties["RetentionInDays"]) != "14" {
				t.Errorf("%s: RetentionInDays %v", g.ID, g.Properties["RetentionInDays"])
			}
		}
		for _, td := range cdktest.Resources(t, tmpl, "AWS::ECS::TaskDefinition") {
			for _, c := range cdktest.List(td.Properties["ContainerDefinitions"]) {
				if lc := c.(map[string]any)["LogConfiguration"]; !strings.Contains(cdktest.JSON(lc), `"awslogs-group":{"Ref"`) {
					t.Errorf("%s: logs go to %s, not the stack's log group", td.ID, cdktest.JSON(lc))
				}
			}
		}
	})

	t.Run("every ECR repository keeps the last 10 and expires untagged images", func(t *testing.T) {
		repos := cdktest.Resources(t, tmpl, "AWS::ECR::Repository")
		if len(repos) != 8 { // the status page runs a public image
			t.Errorf("%d repositories, want 8", len(repos))
		}
		for _, r := range repos {
			policy, _ := r.Properties["LifecyclePolicy"].(map[string]any)
			text := fmt.Sprint(policy["LifecyclePolicyText"])
			if !strings.Contains(text, `"countType":"imageCountMoreThan","countNumber":10`) ||
				!strings.Contains(text, `"tagStatus":"untagged","countType":"sinceImagePushed","countNumber":1,"countUnit":"days"`) {
				t.Errorf("%s: lifecycle policy %s", r.ID, text)
			}
		}
	})

	t.Run("exactly one load balancer, internet-facing, HTTPS with an HTTP redirect", func(t *testing.T) {
		cdktest.Assert(t, "one ALB", func() {
			tmpl.ResourceCountIs(jsii.String("AWS::ElasticLoadBalancingV2::LoadBalancer"), jsii.Number(1))
		})
		cdktest.Assert(t, "internet-facing", func() {
			tmpl.HasResourceProperties(jsii.String("AWS::ElasticLoadBalancingV2::LoadBalancer"), map[string]any{
				"Scheme": "internet-facing", "Type": "application",
			})
		})
		cdktest.Assert(t, "HTTPS listener with the certificate", func() {
			tmpl.HasResourceProperties(jsii.String("AWS::ElasticLoadBalancingV2::Listener"), map[string]any{
				"Port": 443, "Protocol": "HTTPS",
				"Certificates": []any{map[string]any{"CertificateArn": cfg.Certificates[0].ARN}},
			})
		})
		cdktest.Assert(t, "HTTP redirects to HTTPS", func() {
			tmpl.HasResourceProperties(jsii.String("AWS::ElasticLoadBalancingV2::Listener"), map[string]any{
				"Port": 80, "Protocol": "HTTP",
				"DefaultActions": []any{map[string]any{"Type": "redirect",
					"RedirectConfig": assertions.Match_ObjectLike(&map[string]any{"Port": "443", "Protocol": "HTTPS", "StatusCode": "HTTP_301"})}},
			})
		})
		rules := cdktest.Resources(t, tmpl, "AWS::ElasticLoadBalancingV2::ListenerRule")
		if len(rules) != len(cfg.Services) {
			t.Errorf("%d listener rules, want one per service", len(rules))
		}
		// Unique priorities; a rule with a path before any host-only rule (the website's
		// host would otherwise swallow /schedule and /api/*).
		seen := map[string]bool{}
		maxWithPath, minHostOnly := 0, 1<<30
		for _, r := range rules {
			p := fmt.Sprint(r.Properties["Priority"])
			if seen[p] {
				t.Errorf("priority %s used twice", p)
			}
			seen[p] = true
			n, _ := strconv.Atoi(p)
			if strings.Contains(cdktest.JSON(r.Properties["Conditions"]), "path-pattern") {
				maxWithPath = max(maxWithPath, n)
			} else {
				minHostOnly = min(minHostOnly, n)
			}
		}
		if maxWithPath == 0 || maxWithPath > minHostOnly {
			t.Errorf("rules with paths up to priority %d, host-only rules from %d: want the path rules first", maxWithPath, minHostOnly)
		}
	})

	t.Run("Fargate Spot is the cluster's default strategy; on-demand only where asked", func(t *testing.T) {
		cdktest.Assert(t, "default strategy", func() {
			tmpl.HasResourceProperties(jsii.String("AWS::ECS::ClusterCapacityProviderAssociations"), map[string]any{
				"DefaultCapacityProviderStrategy": []any{map[string]any{"CapacityProvider": "FARGATE_SPOT", "Weight": 1}},
			})
		})
		for _, s := range services {
			st := cdktest.JSON(s.Properties["CapacityProviderStrategy"])
			if _, ok := s.Properties["LaunchType"]; ok {
				t.Errorf("%s: a LaunchType bypasses the capacity providers", s.ID)
			}
			switch {
			case strings.HasPrefix(s.ID, "Ticketing"):
				if st != `[{"CapacityProvider":"FARGATE","Weight":1}]` {
					t.Errorf("%s (on-demand): %s", s.ID, st)
				}
			case strings.HasPrefix(s.ID, "Website"):
				if st != `[{"Base":1,"CapacityProvider":"FARGATE","Weight":0},{"CapacityProvider":"FARGATE_SPOT","Weight":1}]` {
					t.Errorf("%s (spot, on-demand base 1): %s", s.ID, st)
				}
			default:
				if st != `[{"CapacityProvider":"FARGATE_SPOT","Weight":1}]` {
					t.Errorf("%s (spot): %s", s.ID, st)
				}
			}
		}
	})

	t.Run("ARM64 Linux tasks of the configured size, on a platform version where Fargate Spot takes them", func(t *testing.T) {
		for _, td := range cdktest.Resources(t, tmpl, "AWS::ECS::TaskDefinition") {
			rp := cdktest.JSON(td.Properties["RuntimePlatform"])
			if rp != `{"CpuArchitecture":"ARM64","OperatingSystemFamily":"LINUX"}` {
				t.Errorf("%s: runtime platform %s", td.ID, rp)
			}
		}
		for _, svc := range cdktest.Resources(t, tmpl, "AWS::ECS::Service") {
			if svc.Properties["PlatformVersion"] != "1.4.0" {
				t.Errorf("%s: platform version %v: Fargate Spot takes ARM64 tasks from 1.4.0 on", svc.ID, svc.Properties["PlatformVersion"])
			}
		}
		cdktest.Assert(t, "ticketing 512/1024", func() {
			tmpl.HasResourceProperties(jsii.String("AWS::ECS::TaskDefinition"), map[string]any{"Cpu": "512", "Memory": "1024"})
		})
	})

	t.Run("Aurora Serverless v2, capacity capped, minimum 0, services allowed in", func(t *testing.T) {
		cdktest.Assert(t, "scaling", func() {
			tmpl.HasResourceProperties(jsii.String("AWS::RDS::DBCluster"), map[string]any{
				"Engine":                           "aurora-postgresql",
				"ServerlessV2ScalingConfiguration": map[string]any{"MinCapacity": 0, "MaxCapacity": 2},
				"StorageEncrypted":                 true,
			})
		})
		cdktest.Assert(t, "serverless writer", func() {
			tmpl.HasResourceProperties(jsii.String("AWS::RDS::DBInstance"), map[string]any{"DBInstanceClass": "db.serverless"})
		})
		ingress := cdktest.Resources(t, tmpl, "AWS::EC2::SecurityGroupIngress")
		n := 0
		for _, r := range ingress {
			if fmt.Sprint(r.Properties["FromPort"]) == "5432" || strings.Contains(cdktest.JSON(r.Properties["FromPort"]), "Endpoint.Port") {
				n++
			}
		}
		if n != len(cfg.Services) {
			t.Errorf("%d database ingress rules, want one per service", n)
		}
		for _, td := range cdktest.Resources(t, tmpl, "AWS::ECS::TaskDefinition") {
			c := cdktest.JSON(td.Properties["ContainerDefinitions"])
			for _, k := range platform.DatabaseEnv {
				if !strings.Contains(c, `"Name":"`+k+`"`) {
					t.Errorf("%s: no %s", td.ID, k)
				}
			}
		}
		cdktest.Assert(t, "cfp's database name", func() {
			tmpl.HasResourceProperties(jsii.String("AWS::ECS::TaskDefinition"), map[string]any{
				"ContainerDefinitions": []any{assertions.Match_ObjectLike(&map[string]any{
					"Environment": assertions.Match_ArrayWith(&[]any{map[string]any{"Name": "PGDATABASE", "Value": "cfp"}}),
				})},
			})
		})
	})

	t.Run("secrets are references, never values", func(t *testing.T) {
		cdktest.Assert(t, "ticketing's SSM and Secrets Manager references", func() {
			tmpl.HasResourceProperties(jsii.String("AWS::ECS::TaskDefinition"), map[string]any{
				"ContainerDefinitions": []any{assertions.Match_ObjectLike(&map[string]any{
					"Secrets": assertions.Match_ArrayWith(&[]any{
						map[string]any{"Name": "SMTP_PASSWORD", "ValueFrom": assertions.Match_AnyValue()},
						map[string]any{"Name": "STRIPE_SECRET_KEY", "ValueFrom": assertions.Match_AnyValue()},
					}),
				})},
			})
		})
	})

	t.Run("outputs: load balancer, cluster, repositories", func(t *testing.T) {
		outs := tmpl.FindOutputs(jsii.String("*"), nil)
		for _, name := range []string{OutputAlbDNS, OutputClusterName, OutputDatabaseEndpoint, OutputRepositoryPrefix + "Website", OutputRepositoryPrefix + "Cfp"} {
			if _, ok := (*outs)[name]; !ok {
				t.Errorf("no output %s", name)
			}
		}
	})
}

// GIVEN a config without certificates or database WHEN synthesized THEN HTTP only, no
// redirect, no database; a non-default retention and keep-last are used.
func TestPlatformStackHTTPOnly(t *testing.T) {
	cfg, err := platform.Parse([]byte(httpOnly))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := synthPlatform(t, cfg)
	cdktest.Assert(t, "one HTTP listener", func() {
		tmpl.ResourceCountIs(jsii.String("AWS::ElasticLoadBalancingV2::Listener"), jsii.Number(1))
		tmpl.HasResourceProperties(jsii.String("AWS::ElasticLoadBalancingV2::Listener"), map[string]any{"Port": 80, "Protocol": "HTTP"})
	})
	cdktest.Assert(t, "no database", func() { tmpl.ResourceCountIs(jsii.String("AWS::RDS::DBCluster"), jsii.Number(0)) })
	cdktest.Assert(t, "retention 7", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::Logs::LogGroup"), map[string]any{"RetentionInDays": 7})
	})
	r := cdktest.Resources(t, tmpl, "AWS::ECR::Repository")
	if len(r) != 1 || !strings.Contains(cdktest.JSON(r[0].Properties), `\"countNumber\":3`) {
		t.Errorf("repositories %s", cdktest.JSON(r))
	}
	for _, sg := range cdktest.Resources(t, tmpl, "AWS::EC2::SecurityGroup") {
		if strings.Contains(cdktest.JSON(sg.Properties), `"FromPort":443`) {
			t.Errorf("%s opens 443 without HTTPS", sg.ID)
		}
	}
}

// GIVEN every retention the config accepts WHEN mapped THEN CDK has a name for it.
func TestPlatformRetentions(t *testing.T) {
	for _, d := range platform.LogRetentions {
		if _, ok := retentions[d]; !ok {
			t.Errorf("no RetentionDays for %d", d)
		}
	}
}

// GIVEN bad props WHEN the stack is built THEN it panics with the validation error.
func TestPlatformStackRejectsBadProps(t *testing.T) {
	cfg := conference(t)
	cfg.Services[0].Memory = 4096
	app := awscdk.NewApp(nil)
	network := NewNetworkStack(app, "Network", minimalProps())
	r := cdktest.Panics(func() {
		NewPlatformStack(app, "Platform", &PlatformStackProps{Vpc: network.Vpc(), Name: cluster, Config: cfg})
	})
	if r == nil || !strings.Contains(fmt.Sprint(r), "cpu 256 with memory 4096") {
		t.Errorf("panic %v", r)
	}
}

// GIVEN the platform stack's templates (the conference example; HTTP only, no database) WHEN
// cfn-guard runs headnat.guard and the chosen Control Tower rules THEN they pass.
func TestPlatformStackPassesCfnGuard(t *testing.T) {
	bin, args := cfnGuard(t)
	plain, err := platform.Parse([]byte(httpOnly))
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*platform.Config{"conference": conference(t), "http-only": plain} {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(synthPlatform(t, cfg).ToJSON())
			if err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(t.TempDir(), "platform.template.json")
			if err := os.WriteFile(f, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, append(args, "-d", f)...).CombinedOutput(); err != nil {
				t.Errorf("cfn-guard: %v\n%s", err, out)
			}
		})
	}
}

// GIVEN headnat.guard WHEN its bounds are read THEN they are the config's: a config that
// validates never fails the guard.
func TestPlatformBoundsMatchGuard(t *testing.T) {
	g, err := os.ReadFile("../guard/headnat.guard")
	if err != nil {
		t.Fatal(err)
	}
	for what, tc := range map[string]struct {
		re   string
		want float64
	}{
		"Aurora MaxCapacity": {`MaxCapacity <= ([0-9.]+)`, platform.MaxACUCap},
		"log retention":      {`RetentionInDays <= ([0-9]+)`, float64(platform.LogRetentions[len(platform.LogRetentions)-1])},
	} {
		m := regexp.MustCompile(tc.re).FindSubmatch(g)
		if m == nil {
			t.Errorf("%s: no bound in headnat.guard", what)
			continue
		}
		if n, _ := strconv.ParseFloat(string(m[1]), 64); n != tc.want {
			t.Errorf("%s: headnat.guard allows %g, the config %g", what, n, tc.want)
		}
	}
}
