package stacks

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecr"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	elb "github.com/aws/aws-cdk-go/awscdk/v2/awselasticloadbalancingv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsrds"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsssm"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/headnat/headnat/cdk/platform"
)

// PlatformStackProps configure NewPlatformStack.
type PlatformStackProps struct {
	awscdk.StackProps // leave Env empty for an environment-agnostic stack
	// Vpc is the network stack's VPC: public subnets for the load balancer, private
	// ("isolated") ones, whose egress is headnat, for the tasks and the database.
	Vpc awsec2.IVpc
	// Name labels the resources (the app passes the cluster name).
	Name string
	// Config is the checked platform config (platform.Load).
	Config *platform.Config
}

// Validate returns the first problem with the props.
func (p *PlatformStackProps) Validate() error {
	switch {
	case p == nil:
		return fmt.Errorf("platform stack: no props")
	case p.Vpc == nil:
		return fmt.Errorf("platform stack: Vpc is required")
	case p.Config == nil:
		return fmt.Errorf("platform stack: Config is required")
	case p.Name == "":
		return fmt.Errorf("platform stack: Name is required")
	}
	if err := p.Config.Validate(); err != nil {
		return fmt.Errorf("platform stack: %w", err)
	}
	return nil
}

// Output names of NewPlatformStack; each repository's is OutputRepositoryPrefix + its
// service's name in CamelCase.
const (
	OutputAlbDNS           = "LoadBalancerDnsName"
	OutputClusterName      = "ClusterName"
	OutputDatabaseEndpoint = "DatabaseEndpoint"
	OutputRepositoryPrefix = "RepositoryUri"
)

// AlbSecurityGroupDescription starts the load balancer's security group description;
// headnat.guard lets only that group open 80 and 443 to the internet.
const AlbSecurityGroupDescription = "platform load balancer "

// PlatformStack holds the services of a platform config.
type PlatformStack interface {
	awscdk.Stack
	LoadBalancer() elb.ApplicationLoadBalancer
	Cluster() awsecs.Cluster
}

type platformStack struct {
	awscdk.Stack
	alb     elb.ApplicationLoadBalancer
	cluster awsecs.Cluster
}

func (s *platformStack) LoadBalancer() elb.ApplicationLoadBalancer { return s.alb }
func (s *platformStack) Cluster() awsecs.Cluster                   { return s.cluster }

// NewPlatformStack builds the config's services with the cost defaults: one shared ALB
// (host/path rules; HTTPS when there are certificates, HTTP redirected), Fargate Spot on
// arm64 in private subnets without public IPs, log retention, ECR lifecycle rules, and an
// optional Aurora Serverless v2 cluster with a capped capacity. Invalid props panic with the
// error of Validate.
func NewPlatformStack(scope constructs.Construct, id string, props *PlatformStackProps) PlatformStack {
	if err := props.Validate(); err != nil {
		panic(err)
	}
	p := *props
	cfg := p.Config
	s := &platformStack{}
	awscdk.NewStack_Override(s, scope, &id, &p.StackProps) // s is the stack itself
	private := &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED}

	// Fargate Spot by default; a service asking for on-demand says so in its own strategy.
	cluster := awsecs.NewCluster(s, jsii.String("Cluster"), &awsecs.ClusterProps{
		Vpc:                            p.Vpc,
		EnableFargateCapacityProviders: jsii.Bool(true),
	})
	cluster.AddDefaultCapacityProviderStrategy(&[]*awsecs.CapacityProviderStrategy{
		{CapacityProvider: jsii.String("FARGATE_SPOT"), Weight: jsii.Number(1)},
	})
	s.cluster = cluster

	https := len(cfg.Certificates) > 0
	albSG := awsec2.NewSecurityGroup(s, jsii.String("LoadBalancerSecurityGroup"), &awsec2.SecurityGroupProps{
		Vpc:              p.Vpc,
		Description:      jsii.String(AlbSecurityGroupDescription + p.Name + ": HTTP and HTTPS from the internet"),
		AllowAllOutbound: jsii.Bool(false),
	})
	albSG.AddIngressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(80)), jsii.String("HTTP"), nil)
	if https {
		albSG.AddIngressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(443)), jsii.String("HTTPS"), nil)
	}
	alb := elb.NewApplicationLoadBalancer(s, jsii.String("LoadBalancer"), &elb.ApplicationLoadBalancerProps{
		Vpc:                     p.Vpc,
		InternetFacing:          jsii.Bool(true),
		VpcSubnets:              &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PUBLIC},
		SecurityGroup:           albSG,
		DropInvalidHeaderFields: jsii.Bool(true),
	})
	s.alb = alb
	notFound := elb.ListenerAction_FixedResponse(jsii.Number(404), &elb.FixedResponseOptions{
		ContentType: jsii.String("text/plain"), MessageBody: jsii.String("not found"),
	})
	var listener elb.ApplicationListener
	if https {
		var certs []elb.IListenerCertificate
		for _, c := range cfg.Certificates {
			certs = append(certs, elb.ListenerCertificate_FromArn(jsii.String(c.ARN)))
		}
		listener = alb.AddListener(jsii.String("Https"), &elb.BaseApplicationListenerProps{
			Port: jsii.Number(443), Protocol: elb.ApplicationProtocol_HTTPS, Certificates: &certs,
			SslPolicy: elb.SslPolicy_RECOMMENDED_TLS, DefaultAction: notFound, Open: jsii.Bool(false),
		})
		alb.AddRedirect(&elb.ApplicationLoadBalancerRedirectConfig{
			SourcePort: jsii.Number(80), SourceProtocol: elb.ApplicationProtocol_HTTP,
			TargetPort: jsii.Number(443), TargetProtocol: elb.ApplicationProtocol_HTTPS, Open: jsii.Bool(false),
		})
	} else {
		listener = alb.AddListener(jsii.String("Http"), &elb.BaseApplicationListenerProps{
			Port: jsii.Number(80), Protocol: elb.ApplicationProtocol_HTTP, DefaultAction: notFound, Open: jsii.Bool(false),
		})
	}

	var db awsrds.DatabaseCluster
	if d := cfg.Database; d != nil {
		db = awsrds.NewDatabaseCluster(s, jsii.String("Database"), &awsrds.DatabaseClusterProps{
			// 16.3 and later pause at 0 ACU.
			Engine: awsrds.DatabaseClusterEngine_AuroraPostgres(&awsrds.AuroraPostgresClusterEngineProps{
				Version: awsrds.AuroraPostgresEngineVersion_VER_16_6(),
			}),
			Writer:                  awsrds.ClusterInstance_ServerlessV2(jsii.String("writer"), nil),
			ServerlessV2MinCapacity: d.MinACU,
			ServerlessV2MaxCapacity: d.MaxACU,
			Vpc:                     p.Vpc,
			VpcSubnets:              private,
			StorageEncrypted:        jsii.Bool(true),
			Credentials:             awsrds.Credentials_FromGeneratedSecret(jsii.String("platform"), nil),
			Backup:                  &awsrds.BackupProps{Retention: awscdk.Duration_Days(jsii.Number(7))},
			DeletionProtection:      jsii.Bool(true),
			CopyTagsToSnapshot:      jsii.Bool(true),
		})
		awscdk.NewCfnOutput(s, jsii.String(OutputDatabaseEndpoint), &awscdk.CfnOutputProps{
			Value:       db.ClusterEndpoint().Hostname(),
			Description: jsii.String("the shared Aurora PostgreSQL cluster's writer endpoint"),
		})
	}

	priorities := cfg.RulePriorities()
	for i := range cfg.Services {
		svc := &cfg.Services[i]
		s.addService(cluster, listener, db, cfg, svc, priorities[svc.Name], private)
	}

	awscdk.NewCfnOutput(s, jsii.String(OutputAlbDNS), &awscdk.CfnOutputProps{
		Value:       alb.LoadBalancerDnsName(),
		Description: jsii.String("the shared load balancer: point every service's host name at it (CNAME or alias)"),
	})
	awscdk.NewCfnOutput(s, jsii.String(OutputClusterName), &awscdk.CfnOutputProps{
		Value:       cluster.ClusterName(),
		Description: jsii.String("the ECS cluster"),
	})
	return s
}

func (s *platformStack) addService(cluster awsecs.Cluster, listener elb.ApplicationListener, db awsrds.DatabaseCluster,
	cfg *platform.Config, svc *platform.Service, priority int, private *awsec2.SubnetSelection) {
	id := camel(svc.Name)
	scope := constructs.NewConstruct(s, jsii.String(id))

	var image awsecs.ContainerImage
	if tag, ok := svc.ECRTag(); ok {
		repo := awsecr.NewRepository(scope, jsii.String("Repository"), &awsecr.RepositoryProps{
			ImageScanOnPush: jsii.Bool(true),
			LifecycleRules: &[]*awsecr.LifecycleRule{
				{RulePriority: jsii.Number(1), Description: jsii.String("expire untagged images after a day"),
					TagStatus: awsecr.TagStatus_UNTAGGED, MaxImageAge: awscdk.Duration_Days(jsii.Number(1))},
				{RulePriority: jsii.Number(2), Description: jsii.String(fmt.Sprintf("keep the last %d images", cfg.EcrKeepLast)),
					TagStatus: awsecr.TagStatus_ANY, MaxImageCount: jsii.Number(cfg.EcrKeepLast)},
			},
		})
		image = awsecs.ContainerImage_FromEcrRepository(repo, jsii.String(tag))
		awscdk.NewCfnOutput(s, jsii.String(OutputRepositoryPrefix+id), &awscdk.CfnOutputProps{
			Value:       repo.RepositoryUri(),
			Description: jsii.String(svc.Name + "'s image repository: push the tag " + tag),
		})
	} else {
		image = awsecs.ContainerImage_FromRegistry(jsii.String(svc.Image), nil)
	}

	logs := awslogs.NewLogGroup(scope, jsii.String("Logs"), &awslogs.LogGroupProps{
		Retention:     retentions[cfg.LogRetentionDays],
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})

	task := awsecs.NewFargateTaskDefinition(scope, jsii.String("Task"), &awsecs.FargateTaskDefinitionProps{
		Cpu:            jsii.Number(svc.CPU),
		MemoryLimitMiB: jsii.Number(svc.Memory),
		RuntimePlatform: &awsecs.RuntimePlatform{
			CpuArchitecture:       awsecs.CpuArchitecture_ARM64(),
			OperatingSystemFamily: awsecs.OperatingSystemFamily_LINUX(),
		},
	})
	env := map[string]*string{}
	for _, k := range platform.SortedKeys(svc.Environment) {
		env[k] = jsii.String(svc.Environment[k])
	}
	secrets := map[string]awsecs.Secret{}
	for _, k := range platform.SortedKeys(svc.Secrets) {
		secrets[k] = secret(scope, "Secret"+k, svc.Secrets[k])
	}
	if db != nil {
		env["PGHOST"] = db.ClusterEndpoint().Hostname()
		env["PGPORT"] = awscdk.Token_AsString(db.ClusterEndpoint().Port(), nil)
		env["PGDATABASE"] = jsii.String(svc.DatabaseName)
		secrets["PGUSER"] = awsecs.Secret_FromSecretsManager(db.Secret(), jsii.String("username"))
		secrets["PGPASSWORD"] = awsecs.Secret_FromSecretsManager(db.Secret(), jsii.String("password"))
	}
	task.AddContainer(jsii.String("app"), &awsecs.ContainerDefinitionOptions{
		Image:          image,
		Essential:      jsii.Bool(true),
		MemoryLimitMiB: jsii.Number(svc.Memory), // the task's: a hard limit (Control Tower ecs-pr-7)
		PortMappings:   &[]*awsecs.PortMapping{{ContainerPort: jsii.Number(svc.Port)}},
		Environment:    &env,
		Secrets:        &secrets,
		Logging: awsecs.LogDriver_AwsLogs(&awsecs.AwsLogDriverProps{
			StreamPrefix: jsii.String(svc.Name), LogGroup: logs,
		}),
	})

	service := awsecs.NewFargateService(scope, jsii.String("Service"), &awsecs.FargateServiceProps{
		Cluster:                    cluster,
		TaskDefinition:             task,
		DesiredCount:               jsii.Number(*svc.DesiredCount),
		AssignPublicIp:             jsii.Bool(false),
		VpcSubnets:                 private,
		CapacityProviderStrategies: strategy(svc),
		// Fargate Spot takes ARM64 tasks from platform version 1.4.0 on: pinned, not LATEST.
		PlatformVersion:   awsecs.FargatePlatformVersion_VERSION1_4,
		CircuitBreaker:    &awsecs.DeploymentCircuitBreaker{Rollback: jsii.Bool(true)},
		MinHealthyPercent: jsii.Number(100),
	})
	if db != nil {
		db.Connections().AllowDefaultPortFrom(service, jsii.String(svc.Name))
	}

	var conds []elb.ListenerCondition
	if len(svc.Hosts) > 0 {
		conds = append(conds, elb.ListenerCondition_HostHeaders(jsii.Strings(svc.Hosts...)))
	}
	if len(svc.Paths) > 0 {
		conds = append(conds, elb.ListenerCondition_PathPatterns(jsii.Strings(svc.Paths...)))
	}
	listener.AddTargets(jsii.String(id), &elb.AddApplicationTargetsProps{
		Port:                jsii.Number(svc.Port),
		Protocol:            elb.ApplicationProtocol_HTTP,
		Targets:             &[]elb.IApplicationLoadBalancerTarget{service},
		Conditions:          &conds,
		Priority:            jsii.Number(priority),
		DeregistrationDelay: awscdk.Duration_Seconds(jsii.Number(30)),
		HealthCheck:         &elb.HealthCheck{Path: jsii.String(svc.HealthCheckPath)},
	})
}

// strategy: spot services run on FARGATE_SPOT above an optional FARGATE base; on-demand ones
// on FARGATE. Always explicit, so no service falls back to the FARGATE launch type.
func strategy(svc *platform.Service) *[]*awsecs.CapacityProviderStrategy {
	if svc.Capacity == platform.CapacityOnDemand {
		return &[]*awsecs.CapacityProviderStrategy{{CapacityProvider: jsii.String("FARGATE"), Weight: jsii.Number(1)}}
	}
	out := []*awsecs.CapacityProviderStrategy{}
	if svc.OnDemandBase > 0 {
		out = append(out, &awsecs.CapacityProviderStrategy{CapacityProvider: jsii.String("FARGATE"),
			Base: jsii.Number(svc.OnDemandBase), Weight: jsii.Number(0)})
	}
	out = append(out, &awsecs.CapacityProviderStrategy{CapacityProvider: jsii.String("FARGATE_SPOT"), Weight: jsii.Number(1)})
	return &out
}

// retentions are CDK's names of the retentions platform.Config accepts.
var retentions = map[int]awslogs.RetentionDays{
	1: awslogs.RetentionDays_ONE_DAY, 3: awslogs.RetentionDays_THREE_DAYS, 5: awslogs.RetentionDays_FIVE_DAYS,
	7: awslogs.RetentionDays_ONE_WEEK, 14: awslogs.RetentionDays_TWO_WEEKS, 30: awslogs.RetentionDays_ONE_MONTH,
	60: awslogs.RetentionDays_TWO_MONTHS, 90: awslogs.RetentionDays_THREE_MONTHS, 120: awslogs.RetentionDays_FOUR_MONTHS,
	150: awslogs.RetentionDays_FIVE_MONTHS, 180: awslogs.RetentionDays_SIX_MONTHS, 365: awslogs.RetentionDays_ONE_YEAR,
	400: awslogs.RetentionDays_THIRTEEN_MONTHS,
}

// secret turns a checked reference into an ECS secret.
func secret(scope constructs.Construct, id, ref string) awsecs.Secret {
	r, err := platform.ParseSecretRef(ref)
	if err != nil {
		panic(err) // Validate has checked it
	}
	if r.SSMParameter != "" {
		return awsecs.Secret_FromSsmParameter(awsssm.StringParameter_FromSecureStringParameterAttributes(scope,
			jsii.String(id), &awsssm.SecureStringParameterAttributes{ParameterName: jsii.String(r.SSMParameter)}))
	}
	var sm awssecretsmanager.ISecret
	switch {
	case r.SecretARN != "" && completeSecretARN(r.SecretARN):
		sm = awssecretsmanager.Secret_FromSecretCompleteArn(scope, jsii.String(id), jsii.String(r.SecretARN))
	case r.SecretARN != "":
		sm = awssecretsmanager.Secret_FromSecretPartialArn(scope, jsii.String(id), jsii.String(r.SecretARN))
	default:
		sm = awssecretsmanager.Secret_FromSecretNameV2(scope, jsii.String(id), jsii.String(r.SecretName))
	}
	var field *string
	if r.JSONKey != "" {
		field = jsii.String(r.JSONKey)
	}
	return awsecs.Secret_FromSecretsManager(sm, field)
}

// completeSecretARN: Secrets Manager appends "-" and 6 characters to the name.
func completeSecretARN(arn string) bool {
	i := strings.LastIndex(arn, "-")
	return i > 0 && len(arn)-i-1 == 6
}

// camel turns "call-for-papers" into "CallForPapers" (construct ids and output names).
func camel(name string) string {
	var b strings.Builder
	for _, part := range strings.Split(name, "-") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}
