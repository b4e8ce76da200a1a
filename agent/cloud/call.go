package cloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// call describes one logical API call for the log.
type call struct {
	op      string
	reason  string
	timeout time.Duration
	attrs   []any // extra key/values: table, target, ...
	write   bool  // logged at Info when it succeeds (describes at Debug)
	// expected reports errors that are an answer, not a failure (IMDS 404): not observed,
	// logged at Debug.
	expected func(error) bool
}

type attemptStats struct {
	n atomic.Int32
}

type statsKey struct{}

// attemptMiddleware counts attempts and reports each failed one to the observer. It sits
// after the retry middleware, so it sees every attempt.
func (c *Client) attemptMiddleware(expected func(error) bool) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		mw := middleware.FinalizeMiddlewareFunc("HeadnatAttempt", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			if s, ok := ctx.Value(statsKey{}).(*attemptStats); ok {
				s.n.Add(1)
			}
			out, md, err := next.HandleFinalize(ctx, in)
			if err != nil && (expected == nil || !expected(err)) {
				c.o.Observer.APIError(middleware.GetOperationName(ctx), ErrorCode(err))
			}
			return out, md, err
		})
		if err := st.Finalize.Insert(mw, "Retry", middleware.After); err != nil {
			return st.Finalize.Add(mw, middleware.After)
		}
		return nil
	}
}

func (c *Client) ec2Opt() func(*ec2.Options) { return c.ec2OptExpecting(nil) }

// ec2OptExpecting does not report the attempts that fail with an expected answer.
func (c *Client) ec2OptExpecting(expected func(error) bool) func(*ec2.Options) {
	return func(o *ec2.Options) { o.APIOptions = append(o.APIOptions, c.attemptMiddleware(expected)) }
}

func (c *Client) asgOpt() func(*autoscaling.Options) {
	return func(o *autoscaling.Options) { o.APIOptions = append(o.APIOptions, c.attemptMiddleware(nil)) }
}

func (c *Client) ssmOpt() func(*ssm.Options) {
	return func(o *ssm.Options) { o.APIOptions = append(o.APIOptions, c.attemptMiddleware(nil)) }
}

func (c *Client) cwOpt() func(*cloudwatch.Options) {
	return func(o *cloudwatch.Options) { o.APIOptions = append(o.APIOptions, c.attemptMiddleware(nil)) }
}

func (c *Client) imdsOpt() func(*imds.Options) {
	return func(o *imds.Options) { o.APIOptions = append(o.APIOptions, c.attemptMiddleware(isNotFound)) }
}

// do runs fn under the call's timeout and logs it once with its outcome.
func (c *Client) do(ctx context.Context, cl call, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, cl.timeout)
	defer cancel()
	stats := &attemptStats{}
	ctx = context.WithValue(ctx, statsKey{}, stats)
	start := time.Now()
	err := fn(ctx)
	attrs := append([]any{
		"op", cl.op, "reason", cl.reason,
		"duration", time.Since(start).Round(time.Microsecond),
		"attempts", stats.n.Load(),
	}, cl.attrs...)
	switch {
	case err == nil:
		lvl := slog.LevelDebug
		if cl.write {
			lvl = slog.LevelInfo
		}
		c.log.Log(ctx, lvl, "aws call", attrs...)
	case cl.expected != nil && cl.expected(err):
		c.log.Debug("aws call", append(attrs, "code", ErrorCode(err))...)
	default:
		if stats.n.Load() == 0 {
			// Failed before any attempt reached the wire (deadline, bad input).
			c.o.Observer.APIError(cl.op, ErrorCode(err))
		}
		c.log.Warn("aws call failed", append(attrs, "code", ErrorCode(err), "error", err)...)
	}
	return err
}

// ErrorCode classifies an SDK error: the AWS error code when the service answered one,
// else "http_<status>", "timeout", "canceled" or "network".
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() != "" {
		return apiErr.ErrorCode()
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) && status.HTTPStatusCode() != 0 {
		return "http_" + strconv.Itoa(status.HTTPStatusCode())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	var canceled *smithy.CanceledError
	if errors.Is(err, context.Canceled) || errors.As(err, &canceled) {
		return "canceled"
	}
	return "network"
}

func httpStatus(err error) int {
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) {
		return status.HTTPStatusCode()
	}
	return 0
}

func isNotFound(err error) bool { return httpStatus(err) == 404 }

func hasCode(err error, code string) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == code
}

// BadResponseError is a response that lacks what the agent needs or does not parse.
type BadResponseError struct {
	Op     string
	Detail string
}

func (e *BadResponseError) Error() string { return fmt.Sprintf("%s: bad response: %s", e.Op, e.Detail) }

func bad(op, format string, args ...any) error {
	return &BadResponseError{Op: op, Detail: fmt.Sprintf(format, args...)}
}
