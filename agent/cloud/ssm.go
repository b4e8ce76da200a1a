package cloud

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
)

// ErrParameterNotFound is wrapped by SecureParameter when SSM has no parameter by the name.
var ErrParameterNotFound = errors.New("no such SSM parameter")

// SecureParameter reads the SecureString parameter name from SSM Parameter Store, decrypted.
// The value is a secret: it is never logged, and no error carries it (nor any part of a
// response that failed to parse). A parameter of another type is refused: a secret stored
// in plain text is a configuration error.
func (c *Client) SecureParameter(ctx context.Context, name, reason string) (string, error) {
	const op = "GetParameter"
	if name == "" {
		return "", errors.New("SSM parameter: no name given")
	}
	if c.ssm == nil {
		return "", fmt.Errorf("%s: %w", op, errNoClient)
	}
	var value string
	err := c.do(ctx, call{op: op, reason: reason, timeout: c.o.Timeouts.Describe, attrs: []any{"parameter", name}},
		func(ctx context.Context) error {
			out, err := c.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)}, c.ssmOpt())
			if err != nil {
				return redactSSMError(err)
			}
			p := out.Parameter
			switch {
			case p == nil || p.Value == nil:
				return bad(op, "parameter %q: no value in the response", name)
			case p.Type != types.ParameterTypeSecureString:
				return fmt.Errorf("SSM parameter %q is a %s, not a SecureString: store the secret encrypted", name, typeName(p.Type))
			case *p.Value == "":
				return fmt.Errorf("SSM parameter %q is empty", name)
			}
			value = *p.Value
			return nil
		})
	if hasCode(err, "ParameterNotFound") {
		return "", fmt.Errorf("%w: %q (%w)", ErrParameterNotFound, name, err)
	}
	if err != nil {
		return "", fmt.Errorf("read SSM parameter %q: %w", name, err)
	}
	return value, nil
}

func typeName(t types.ParameterType) string {
	if t == "" {
		return "parameter of no type"
	}
	return string(t)
}

// redactSSMError keeps what an SDK error says about the failure, but not a response body
// it failed to parse: that body may hold the decrypted value.
func redactSSMError(err error) error {
	var de *smithy.DeserializationError
	if errors.As(err, &de) {
		return &redactedError{status: httpStatus(err)}
	}
	return err
}

// redactedError stands for an SDK error whose text could hold the secret.
type redactedError struct{ status int }

func (e *redactedError) Error() string {
	return fmt.Sprintf("GetParameter: the response could not be parsed (HTTP %d; details withheld: they may hold the secret)", e.status)
}

// HTTPStatusCode lets ErrorCode classify it.
func (e *redactedError) HTTPStatusCode() int { return e.status }
