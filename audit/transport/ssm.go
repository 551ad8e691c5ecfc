package transport

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/esbake/packer-plugin-elasticsearch/audit/target"
)

// SSMAPI is the part of the SSM client the transport uses.
type SSMAPI interface {
	SendCommand(context.Context, *ssm.SendCommandInput, ...func(*ssm.Options)) (*ssm.SendCommandOutput, error)
	GetCommandInvocation(context.Context, *ssm.GetCommandInvocationInput, ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error)
}

// SSMConfig configures the SSM transport.
type SSMConfig struct {
	// MaxConcurrency is SendCommand's MaxConcurrency (how many instances
	// run the command at once). Default 32.
	MaxConcurrency int
	// TimeoutSeconds is the command's execution timeout. Default 60.
	TimeoutSeconds int32
	// PollInterval between GetCommandInvocation calls. Default 2s.
	PollInterval time.Duration
	// MaxOutput bounds the decoded facts document. Default DefaultMaxOutput.
	MaxOutput int64
}

// SSM runs `esnode facts` with SSM Run Command (AWS-RunShellScript). Its
// output comes back gzip+base64 between markers: GetCommandInvocation keeps
// only the first 24,000 characters of standard output, and compressed facts
// fit that; a truncated answer is detected and reported.
type SSM struct {
	api SSMAPI
	cfg SSMConfig

	mu      sync.Mutex
	pending map[string]string // instance id -> command id
	sendErr map[string]error
}

// NewSSM returns the transport.
func NewSSM(api SSMAPI, cfg SSMConfig) *SSM {
	if cfg.MaxConcurrency <= 0 {
		cfg.MaxConcurrency = 32
	}
	if cfg.TimeoutSeconds <= 0 {
		cfg.TimeoutSeconds = 60
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 2 * time.Second
	}
	if cfg.MaxOutput <= 0 {
		cfg.MaxOutput = DefaultMaxOutput
	}
	return &SSM{api: api, cfg: cfg, pending: map[string]string{}, sendErr: map[string]error{}}
}

const (
	ssmBegin = "ESAUDIT-FACTS-GZ-BEGIN"
	ssmEnd   = "ESAUDIT-FACTS-GZ-END"
)

// ssmScript runs as root (the SSM agent's user), so no sudo.
var ssmScript = `PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
p=$(command -v esnode) || { echo "esaudit-no-esnode $(uname -m)" >&2; exit 127; }
out=$("$p" facts) || exit $?
echo ` + ssmBegin + `
printf '%s' "$out" | gzip -c | base64 | tr -d '\n'
echo
echo ` + ssmEnd

// ssmBatch is SendCommand's limit of instance ids per call.
const ssmBatch = 50

// Prepare sends the command to every SSM target, in batches of 50 instance
// ids, so the instances work in parallel (bounded by MaxConcurrency) while
// Fetch collects the answers.
func (s *SSM) Prepare(ctx context.Context, ts []target.Target) error {
	var ids []string
	for _, t := range ts {
		if t.InstanceID != "" {
			ids = append(ids, t.InstanceID)
		}
	}
	for len(ids) > 0 {
		n := min(ssmBatch, len(ids))
		batch := ids[:n]
		ids = ids[n:]
		out, err := s.api.SendCommand(ctx, &ssm.SendCommandInput{
			DocumentName:   aws.String("AWS-RunShellScript"),
			InstanceIds:    batch,
			MaxConcurrency: aws.String(strconv.Itoa(s.cfg.MaxConcurrency)),
			MaxErrors:      aws.String("100%"),
			TimeoutSeconds: aws.Int32(s.cfg.TimeoutSeconds),
			Comment:        aws.String("esaudit: esnode facts"),
			Parameters: map[string][]string{
				"commands":         {ssmScript},
				"executionTimeout": {strconv.Itoa(int(s.cfg.TimeoutSeconds))},
			},
		})
		s.mu.Lock()
		for _, id := range batch {
			if err != nil {
				s.sendErr[id] = errorf(KindTransport, "SSM SendCommand: %w (the caller needs ssm:SendCommand on the instance and AWS-RunShellScript; is the SSM agent online?)", err)
			} else {
				s.pending[id] = aws.ToString(out.Command.CommandId)
			}
		}
		s.mu.Unlock()
	}
	return nil
}

// Fetch implements Transport: it polls the instance's invocation until it
// ends, then decodes the facts from the output.
func (s *SSM) Fetch(ctx context.Context, t target.Target) ([]byte, error) {
	if t.InstanceID == "" {
		return nil, errorf(KindUnreachable, "SSM needs an instance id (discover with --ec2-tag, or give instance_id= in the inventory)")
	}
	s.mu.Lock()
	cmdID, ok := s.pending[t.InstanceID]
	sendErr := s.sendErr[t.InstanceID]
	s.mu.Unlock()
	if sendErr != nil {
		return nil, sendErr
	}
	if !ok {
		if err := s.Prepare(ctx, []target.Target{t}); err != nil {
			return nil, err
		}
		return s.Fetch(ctx, t)
	}
	for {
		inv, err := s.api.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(cmdID), InstanceId: aws.String(t.InstanceID)})
		if err != nil {
			var ae smithy.APIError
			// The invocation appears shortly after SendCommand: keep polling.
			if !(errors.As(err, &ae) && ae.ErrorCode() == "InvocationDoesNotExist") {
				if ctx.Err() != nil {
					return nil, errorf(KindTimeout, "SSM command on %s: node deadline reached", t.InstanceID)
				}
				return nil, errorf(KindTransport, "SSM GetCommandInvocation on %s: %w (the caller needs ssm:GetCommandInvocation)", t.InstanceID, err)
			}
		} else {
			switch inv.Status {
			case types.CommandInvocationStatusSuccess:
				return s.decode(aws.ToString(inv.StandardOutputContent))
			case types.CommandInvocationStatusFailed:
				stderr := aws.ToString(inv.StandardErrorContent)
				if strings.Contains(stderr, "esaudit-no-esnode") {
					return nil, errorf(KindNoEsnode, "esnode is not installed on %s, and SSM cannot upload it: audit this node over SSH, or install esnode", t.InstanceID)
				}
				return nil, errorf(KindCommand, "esnode facts on %s failed (exit %d): %s", t.InstanceID, inv.ResponseCode, strings.TrimSpace(lastBytes(stderr, 2000)))
			case types.CommandInvocationStatusTimedOut:
				return nil, errorf(KindTimeout, "SSM command on %s timed out", t.InstanceID)
			case types.CommandInvocationStatusCancelled, types.CommandInvocationStatusCancelling:
				return nil, errorf(KindCommand, "SSM command on %s was cancelled", t.InstanceID)
			case types.CommandInvocationStatusDelayed:
				// Undeliverable so far (agent offline); the deadline ends it.
			}
		}
		if err := sleepCtx(ctx, s.cfg.PollInterval); err != nil {
			return nil, errorf(KindTimeout, "SSM command on %s: node deadline reached before it finished (agent offline or instance not managed?)", t.InstanceID)
		}
	}
}

func (s *SSM) decode(out string) ([]byte, error) {
	i := strings.Index(out, ssmBegin)
	j := strings.Index(out, ssmEnd)
	if i < 0 || j < i {
		return nil, errorf(KindInvalidOutput, "SSM output has no complete facts block (%d characters; SSM keeps 24,000): the facts document is too large for SSM output, audit this node over SSH", len(out))
	}
	enc := strings.TrimSpace(out[i+len(ssmBegin) : j])
	gz, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, errorf(KindInvalidOutput, "SSM output is not base64: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, errorf(KindInvalidOutput, "SSM output is not gzip: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(zr, s.cfg.MaxOutput+1))
	if err != nil {
		return nil, errorf(KindInvalidOutput, "SSM output: %w", err)
	}
	if int64(len(b)) > s.cfg.MaxOutput {
		return nil, errorf(KindOutputTooBig, "facts from SSM exceed %d bytes", s.cfg.MaxOutput)
	}
	return b, nil
}
