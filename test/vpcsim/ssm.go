package vpcsim

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// SSM Parameter Store speaks the awsJson1_1 protocol: a POST whose X-Amz-Target header names
// the operation ("AmazonSSM.GetParameter") and whose body is JSON; errors are JSON objects
// with a __type.
const (
	serviceSSM   = "ssm"
	ssmTarget    = "AmazonSSM."
	ssmJSONType  = "application/x-amz-json-1.1"
	maxJSONBytes = 1 << 20
)

// ssmParam is one stored parameter.
type ssmParam struct {
	value    string
	secure   bool
	version  int64
	modified time.Time
}

// PutParameter stores (or overwrites, as a new version) an SSM parameter: a SecureString
// when secure, else a String. Only GetParameter is served; the lab and tests seed with this.
func (s *Sim) PutParameter(name, value string, secure bool) {
	if name == "" {
		panic("vpcsim: PutParameter with no name")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.params == nil {
		s.params = map[string]*ssmParam{}
	}
	p := s.params[name]
	if p == nil {
		p = &ssmParam{}
		s.params[name] = p
	}
	p.value, p.secure, p.modified = value, secure, s.opts.Now()
	p.version++
}

// ssmOps are the SSM operations served, by X-Amz-Target suffix.
var ssmOps = map[string]func(s *Sim, body []byte) (any, *apiError){
	"GetParameter": (*Sim).getParameter,
}

func (s *Sim) serveSSM(w http.ResponseWriter, r *http.Request, reqID string) {
	action := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), ssmTarget)
	s.mu.Lock()
	s.requests[action]++
	s.mu.Unlock()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBytes))
	if err != nil {
		writeJSONError(w, reqID, errf(400, "SerializationException", "cannot read the request: %v", err))
		return
	}
	fn, ok := ssmOps[action]
	if !ok || r.Method != http.MethodPost {
		writeJSONError(w, reqID, errf(400, "UnknownOperationException", "%s is not an operation of this simulator", action))
		return
	}
	if aerr := s.fault(r.Context(), serviceSSM, action); aerr != nil {
		writeJSONError(w, reqID, aerr)
		return
	}
	out, aerr := fn(s, body)
	if aerr != nil {
		writeJSONError(w, reqID, aerr)
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		s.log.Error("write response", "action", action, "err", err)
		writeJSONError(w, reqID, errf(500, "InternalServerError", "encode the response"))
		return
	}
	w.Header().Set("Content-Type", ssmJSONType)
	w.Header().Set("X-Amzn-Requestid", reqID)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

type getParameterIn struct {
	Name           *string `json:"Name"`
	WithDecryption *bool   `json:"WithDecryption"`
}

type xParameter struct {
	ARN              string  `json:"ARN"`
	DataType         string  `json:"DataType"`
	LastModifiedDate float64 `json:"LastModifiedDate"` // epoch seconds
	Name             string  `json:"Name"`
	Type             string  `json:"Type"`
	Value            string  `json:"Value"`
	Version          int64   `json:"Version"`
}

func (s *Sim) getParameter(body []byte) (any, *apiError) {
	var in getParameterIn
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, errf(400, "SerializationException", "cannot parse the request body")
	}
	if in.Name == nil || *in.Name == "" {
		return nil, errf(400, "ValidationException", "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null")
	}
	name := *in.Name
	s.mu.Lock()
	p, ok := s.params[name]
	var x xParameter
	if ok {
		x = xParameter{ARN: s.parameterARN(name), DataType: "text", LastModifiedDate: float64(p.modified.UnixMilli()) / 1000,
			Name: name, Type: "String", Value: p.value, Version: p.version}
		if p.secure {
			x.Type = "SecureString"
			if in.WithDecryption == nil || !*in.WithDecryption {
				x.Value = ciphertext(p.value)
			}
		}
	}
	s.mu.Unlock()
	if !ok {
		return nil, errf(400, "ParameterNotFound", "Parameter %s not found.", name)
	}
	return struct {
		Parameter xParameter `json:"Parameter"`
	}{x}, nil
}

// parameterARN is the ARN SSM gives a parameter: a name starting with "/" is joined as is.
func (s *Sim) parameterARN(name string) string {
	if !strings.HasPrefix(name, "/") {
		name = "/" + name
	}
	return fmt.Sprintf("arn:aws:ssm:%s:%s:parameter%s", s.opts.Region, s.opts.AccountID, name)
}

// ciphertext stands for a SecureString read without decryption: opaque, and not the value.
func ciphertext(value string) string {
	sum := sha256.Sum256([]byte("vpcsim-kms:" + value))
	return base64.StdEncoding.EncodeToString(append([]byte("vpcsim-kms-blob:"), sum[:]...))
}

// writeJSONError answers an awsJson1_1 error.
func writeJSONError(w http.ResponseWriter, reqID string, e *apiError) {
	b, err := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message,omitempty"`
	}{e.Code, e.Message})
	if err != nil {
		b = []byte(`{"__type":"InternalServerError"}`)
	}
	w.Header().Set("Content-Type", ssmJSONType)
	w.Header().Set("X-Amzn-Requestid", reqID)
	w.WriteHeader(e.Status)
	_, _ = w.Write(b)
}
