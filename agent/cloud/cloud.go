// Package cloud is the agent's view of AWS: its own identity from IMDSv2, the cluster's
// instances and managed route tables from EC2, the writes that point routes at this
// instance, the cluster's pool of Elastic IPs, the Auto Scaling lifecycle calls, secrets
// from SSM Parameter Store, and the agent's CloudWatch metrics.
//
// Every call has its own timeout, is logged with its reason, is retried on throttling and
// 5xx with a short jittered backoff, and reports each failed attempt to an Observer.
package cloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// EC2API is the part of *ec2.Client the agent uses.
type EC2API interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeRouteTables(ctx context.Context, in *ec2.DescribeRouteTablesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeRouteTablesOutput, error)
	DescribeSubnets(ctx context.Context, in *ec2.DescribeSubnetsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
	DescribeNetworkInterfaces(ctx context.Context, in *ec2.DescribeNetworkInterfacesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeNetworkInterfacesOutput, error)
	ModifyNetworkInterfaceAttribute(ctx context.Context, in *ec2.ModifyNetworkInterfaceAttributeInput, optFns ...func(*ec2.Options)) (*ec2.ModifyNetworkInterfaceAttributeOutput, error)
	ReplaceRoute(ctx context.Context, in *ec2.ReplaceRouteInput, optFns ...func(*ec2.Options)) (*ec2.ReplaceRouteOutput, error)
	CreateRoute(ctx context.Context, in *ec2.CreateRouteInput, optFns ...func(*ec2.Options)) (*ec2.CreateRouteOutput, error)
	DescribeAddresses(ctx context.Context, in *ec2.DescribeAddressesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error)
	AssociateAddress(ctx context.Context, in *ec2.AssociateAddressInput, optFns ...func(*ec2.Options)) (*ec2.AssociateAddressOutput, error)
	DisassociateAddress(ctx context.Context, in *ec2.DisassociateAddressInput, optFns ...func(*ec2.Options)) (*ec2.DisassociateAddressOutput, error)
}

// ASGAPI is the part of *autoscaling.Client the agent uses.
type ASGAPI interface {
	CompleteLifecycleAction(ctx context.Context, in *autoscaling.CompleteLifecycleActionInput, optFns ...func(*autoscaling.Options)) (*autoscaling.CompleteLifecycleActionOutput, error)
	RecordLifecycleActionHeartbeat(ctx context.Context, in *autoscaling.RecordLifecycleActionHeartbeatInput, optFns ...func(*autoscaling.Options)) (*autoscaling.RecordLifecycleActionHeartbeatOutput, error)
	DescribeAutoScalingGroups(ctx context.Context, in *autoscaling.DescribeAutoScalingGroupsInput, optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	DescribeAutoScalingInstances(ctx context.Context, in *autoscaling.DescribeAutoScalingInstancesInput, optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingInstancesOutput, error)
	DescribeLifecycleHooks(ctx context.Context, in *autoscaling.DescribeLifecycleHooksInput, optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeLifecycleHooksOutput, error)
}

// SSMAPI is the part of *ssm.Client the agent uses.
type SSMAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// CloudWatchAPI is the part of *cloudwatch.Client the agent uses.
type CloudWatchAPI interface {
	PutMetricData(ctx context.Context, in *cloudwatch.PutMetricDataInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error)
}

// IMDSAPI is the part of *imds.Client the agent uses.
type IMDSAPI interface {
	GetMetadata(ctx context.Context, in *imds.GetMetadataInput, optFns ...func(*imds.Options)) (*imds.GetMetadataOutput, error)
	GetInstanceIdentityDocument(ctx context.Context, in *imds.GetInstanceIdentityDocumentInput, optFns ...func(*imds.Options)) (*imds.GetInstanceIdentityDocumentOutput, error)
}

var (
	_ EC2API  = (*ec2.Client)(nil)
	_ ASGAPI  = (*autoscaling.Client)(nil)
	_ IMDSAPI = (*imds.Client)(nil)
	_ SSMAPI  = (*ssm.Client)(nil)

	_ CloudWatchAPI = (*cloudwatch.Client)(nil)
)

// Observer is told about every failed API attempt (retried or not), by SDK operation name
// and error code (the AWS code, or "http_<status>", "timeout", "canceled", "network").
type Observer interface {
	APIError(op, code string)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(op, code string)

// APIError calls f.
func (f ObserverFunc) APIError(op, code string) { f(op, code) }

// Timeouts bound each call. Zero fields take the defaults.
type Timeouts struct {
	Mutate   time.Duration // route and attribute writes, lifecycle calls (default 2s)
	Describe time.Duration // EC2 and ASG describes, SSM reads (default 3s)
	IMDS     time.Duration // one metadata read (default 2s)
	Attempt  time.Duration // one HTTP attempt to EC2/ASG/SSM, so a stalled attempt is retried (default 1s)
}

// Defaults for Options.
const (
	DefaultMutateTimeout   = 2 * time.Second
	DefaultDescribeTimeout = 3 * time.Second
	DefaultIMDSTimeout     = 2 * time.Second
	DefaultAttemptTimeout  = time.Second
	DefaultMaxAttempts     = 6
	DefaultMaxBackoff      = 200 * time.Millisecond
	DefaultBaseBackoff     = 25 * time.Millisecond
	DefaultConfirmAttempts = 10
	DefaultConfirmInterval = 200 * time.Millisecond
	// DefaultLaunchConsistencyWait: EC2 may take seconds to describe a new instance.
	DefaultLaunchConsistencyWait = 30 * time.Second
)

// Options configure New. Empty endpoints mean the AWS defaults; the lab sets them.
type Options struct {
	Region      string // "" = read from IMDS
	EC2Endpoint string
	ASGEndpoint string
	SSMEndpoint string
	// CloudWatchEndpoint serves PutMetricData (the lab's simulator speaks it too).
	CloudWatchEndpoint string
	IMDSEndpoint       string
	Credentials        aws.CredentialsProvider // nil = the SDK's default chain
	Logger             *slog.Logger
	Timeouts           Timeouts
	MaxAttempts        int           // per call, first attempt included (default 6)
	MaxBackoff         time.Duration // cap of one retry delay (default 200ms)
	Observer           Observer
	// How often and how far apart SourceDestCheckOff re-reads the ENI before giving up.
	ConfirmAttempts int
	ConfirmInterval time.Duration
	// LaunchConsistencyWait is how long DescribeSelf re-reads (ConfirmInterval apart) an
	// instance that EC2 does not know yet, as right after launch (default 30s).
	LaunchConsistencyWait time.Duration
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Timeouts.Mutate <= 0 {
		o.Timeouts.Mutate = DefaultMutateTimeout
	}
	if o.Timeouts.Describe <= 0 {
		o.Timeouts.Describe = DefaultDescribeTimeout
	}
	if o.Timeouts.IMDS <= 0 {
		o.Timeouts.IMDS = DefaultIMDSTimeout
	}
	if o.Timeouts.Attempt <= 0 {
		o.Timeouts.Attempt = DefaultAttemptTimeout
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.Observer == nil {
		o.Observer = ObserverFunc(func(string, string) {})
	}
	if o.ConfirmAttempts <= 0 {
		o.ConfirmAttempts = DefaultConfirmAttempts
	}
	if o.ConfirmInterval <= 0 {
		o.ConfirmInterval = DefaultConfirmInterval
	}
	if o.LaunchConsistencyWait <= 0 {
		o.LaunchConsistencyWait = DefaultLaunchConsistencyWait
	}
}

// Client is the agent's AWS client. It is safe for concurrent use.
type Client struct {
	ec2  EC2API
	asg  ASGAPI
	imds IMDSAPI
	ssm  SSMAPI
	cw   CloudWatchAPI
	o    Options
	log  *slog.Logger

	mu   sync.Mutex
	self *Identity // cached by ReadIdentity
}

// RetryableCodes are the AWS error codes retried with backoff, besides HTTP 5xx and
// connection errors.
var RetryableCodes = []string{
	"RequestLimitExceeded", "Throttling", "ThrottlingException", "RequestThrottled",
	"EC2ThrottledException", "TooManyRequestsException",
	"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable",
	"RequestTimeout", "RequestTimeoutException",
}

// NewRetryer is the retry policy of every client New builds: standard retryer, no retry
// quota (a burst of throttling must not disable retries), exponential backoff from 25ms
// capped at maxBackoff, with jitter.
func NewRetryer(maxAttempts int, maxBackoff time.Duration) aws.Retryer {
	codes := make(map[string]struct{}, len(RetryableCodes))
	for _, c := range RetryableCodes {
		codes[c] = struct{}{}
	}
	return retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = maxAttempts
		so.MaxBackoff = maxBackoff
		so.RateLimiter = ratelimit.None
		so.Retryables = append(so.Retryables, retry.RetryableErrorCode{Codes: codes})
		so.Backoff = retry.BackoffDelayerFunc(func(attempt int, _ error) (time.Duration, error) {
			return backoff(attempt, DefaultBaseBackoff, maxBackoff), nil
		})
	})
}

// backoff is "equal jitter": half the exponential delay fixed, half random.
func backoff(attempt int, base, maxDelay time.Duration) time.Duration {
	d := maxDelay
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= 20 {
		if e := base << (attempt - 1); e < maxDelay {
			d = e
		}
	}
	half := d / 2
	return half + rand.N(half+1)
}

// New builds the SDK clients and returns the agent's client. With no Region configured it
// reads the region from IMDS.
func New(ctx context.Context, o Options) (*Client, error) {
	o.setDefaults()
	retryer := func() aws.Retryer { return NewRetryer(o.MaxAttempts, o.MaxBackoff) }

	md := imds.New(imds.Options{
		Endpoint:          o.IMDSEndpoint,
		EnableFallback:    aws.FalseTernary,
		ClientEnableState: imds.ClientEnabled,
		Retryer:           retryer(),
	})

	region := o.Region
	if region == "" {
		c := NewWithClients(nil, nil, md, nil, o)
		r, err := c.readRegion(ctx)
		if err != nil {
			return nil, fmt.Errorf("no region configured and none from IMDS: %w", err)
		}
		region = r
	}

	httpClient := awshttp.NewBuildableClient().WithTimeout(o.Timeouts.Attempt).
		WithTransportOptions(func(tr *http.Transport) { tr.MaxIdleConnsPerHost = 8 })
	loadOpts := []func(*config.LoadOptions) error{
		config.WithRegion(region),
		config.WithRetryer(retryer),
		config.WithHTTPClient(httpClient),
	}
	if o.Credentials != nil {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(o.Credentials))
	} else {
		// Instance-role credentials come through the same IMDSv2-only client.
		loadOpts = append(loadOpts, config.WithEC2RoleCredentialOptions(func(ro *ec2rolecreds.Options) {
			ro.Client = md
		}))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	ec2c := ec2.NewFromConfig(cfg, func(eo *ec2.Options) {
		if o.EC2Endpoint != "" {
			eo.BaseEndpoint = aws.String(o.EC2Endpoint)
		}
	})
	asgc := autoscaling.NewFromConfig(cfg, func(ao *autoscaling.Options) {
		if o.ASGEndpoint != "" {
			ao.BaseEndpoint = aws.String(o.ASGEndpoint)
		}
	})
	ssmc := ssm.NewFromConfig(cfg, func(so *ssm.Options) {
		if o.SSMEndpoint != "" {
			so.BaseEndpoint = aws.String(o.SSMEndpoint)
		}
	})
	cwc := cloudwatch.NewFromConfig(cfg, func(co *cloudwatch.Options) {
		if o.CloudWatchEndpoint != "" {
			co.BaseEndpoint = aws.String(o.CloudWatchEndpoint)
		}
	})
	o.Region = region
	c := NewWithClients(ec2c, asgc, md, ssmc, o)
	c.cw = cwc
	return c, nil
}

// NewWithClients wraps clients the caller built (any of them may be nil if unused).
// Timeouts, logging and per-attempt observation apply; the retry policy is the clients' own.
func NewWithClients(e EC2API, a ASGAPI, m IMDSAPI, s SSMAPI, o Options) *Client {
	o.setDefaults()
	return &Client{ec2: e, asg: a, imds: m, ssm: s, o: o, log: o.Logger}
}

// Region is the region the client was built for ("" when built by NewWithClients without one).
func (c *Client) Region() string { return c.o.Region }

var errNoClient = errors.New("no client configured for this service")
