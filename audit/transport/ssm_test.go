package transport

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/esbake/packer-plugin-elasticsearch/audit/target"
	"github.com/esbake/packer-plugin-elasticsearch/facts"
)

// fakeSSM is a stand-in for SSM Run Command: it "runs" the script by
// answering per instance, after one InvocationDoesNotExist and one
// InProgress poll.
type fakeSSM struct {
	mu      sync.Mutex
	sends   []*ssm.SendCommandInput
	polls   map[string]int
	outputs map[string]*ssm.GetCommandInvocationOutput
}

func (f *fakeSSM) SendCommand(_ context.Context, in *ssm.SendCommandInput, _ ...func(*ssm.Options)) (*ssm.SendCommandOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sends = append(f.sends, in)
	return &ssm.SendCommandOutput{Command: &types.Command{CommandId: aws.String("cmd-" + in.InstanceIds[0])}}, nil
}

func (f *fakeSSM) GetCommandInvocation(_ context.Context, in *ssm.GetCommandInvocationInput, _ ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := aws.ToString(in.InstanceId)
	f.polls[id]++
	switch f.polls[id] {
	case 1:
		return nil, &smithy.GenericAPIError{Code: "InvocationDoesNotExist", Message: "not yet"}
	case 2:
		return &ssm.GetCommandInvocationOutput{Status: types.CommandInvocationStatusInProgress}, nil
	}
	if o, ok := f.outputs[id]; ok {
		return o, nil
	}
	return &ssm.GetCommandInvocationOutput{Status: types.CommandInvocationStatusDelayed}, nil
}

func gzb64(t *testing.T, b []byte) string {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

func TestSSM(t *testing.T) {
	doc := factsDoc(t, "ssm-node")
	f := &fakeSSM{polls: map[string]int{}, outputs: map[string]*ssm.GetCommandInvocationOutput{
		"i-ok":        {Status: types.CommandInvocationStatusSuccess, StandardOutputContent: aws.String("noise\n" + ssmBegin + "\n" + gzb64(t, doc) + "\n" + ssmEnd + "\n")},
		"i-truncated": {Status: types.CommandInvocationStatusSuccess, StandardOutputContent: aws.String(ssmBegin + "\n" + strings.Repeat("A", 23900))},
		"i-legacy":    {Status: types.CommandInvocationStatusFailed, ResponseCode: 127, StandardErrorContent: aws.String("esaudit-no-esnode x86_64")},
		"i-failed":    {Status: types.CommandInvocationStatusFailed, ResponseCode: 1, StandardErrorContent: aws.String("boom")},
	}}
	s := NewSSM(f, SSMConfig{MaxConcurrency: 7, PollInterval: time.Millisecond})
	var ts []target.Target
	for i := 0; i < 60; i++ {
		ts = append(ts, target.Target{InstanceID: "i-other", Transport: target.SSM})
	}
	ids := []string{"i-ok", "i-truncated", "i-legacy", "i-failed", "i-offline"}
	for _, id := range ids {
		ts = append(ts, target.Target{Name: id, InstanceID: id, Transport: target.SSM})
	}
	if err := s.Prepare(context.Background(), ts); err != nil {
		t.Fatal(err)
	}
	if len(f.sends) != 2 || len(f.sends[0].InstanceIds) != 50 || len(f.sends[1].InstanceIds) != 15 {
		t.Fatalf("want batches of 50: %d sends", len(f.sends))
	}
	in := f.sends[0]
	if aws.ToString(in.DocumentName) != "AWS-RunShellScript" || aws.ToString(in.MaxConcurrency) != "7" || !strings.Contains(in.Parameters["commands"][0], `"$p" facts`) {
		t.Errorf("SendCommand input = %+v", in)
	}
	want := map[string]string{"i-truncated": KindInvalidOutput, "i-legacy": KindNoEsnode, "i-failed": KindCommand, "i-offline": KindTimeout}
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		out, err := s.Fetch(ctx, target.Target{Name: id, InstanceID: id, Transport: target.SSM})
		cancel()
		if id == "i-ok" {
			if err != nil {
				t.Fatal(err)
			}
			if g, err := facts.Parse(out); err != nil || g.Host.Hostname != "ssm-node" {
				t.Errorf("decoded facts = %v, %v", g, err)
			}
			continue
		}
		if KindOf(err) != want[id] {
			t.Errorf("%s: kind %s (%v), want %s", id, KindOf(err), err, want[id])
		}
	}
}

func TestFileAndLocal(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/n.json"
	doc := factsDoc(t, "file-node")
	if err := writeFile(p, doc); err != nil {
		t.Fatal(err)
	}
	out, err := File{}.Fetch(context.Background(), target.Target{FactsFile: p})
	if err != nil || !bytes.Equal(out, doc) {
		t.Errorf("File.Fetch = %q, %v", out, err)
	}
	if _, err := (File{MaxBytes: 10}).Fetch(context.Background(), target.Target{FactsFile: p}); KindOf(err) != KindOutputTooBig {
		t.Errorf("oversized file kind = %s", KindOf(err))
	}
	// Local collection of an empty root: a valid, mostly empty document.
	out, err = Local{Options: &facts.Options{Root: dir}}.Fetch(context.Background(), target.Target{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := facts.Parse(out); err != nil {
		t.Errorf("local facts do not parse: %v", err)
	}
}

func writeFile(p string, b []byte) error { return os.WriteFile(p, b, 0o644) }

// TestSSMOverSDK drives the transport through the real SDK client against
// a stand-in SSM endpoint (JSON 1.1 on loopback), so the wire shapes of
// SendCommand and GetCommandInvocation are exercised.
func TestSSMOverSDK(t *testing.T) {
	doc := factsDoc(t, "sdk-node")
	var mu sync.Mutex
	var sent map[string]any
	polls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		mu.Lock()
		defer mu.Unlock()
		switch r.Header.Get("X-Amz-Target") {
		case "AmazonSSM.SendCommand":
			sent = body
			w.Write([]byte(`{"Command":{"CommandId":"11111111-2222-3333-4444-555555555555","Status":"Pending"}}`))
		case "AmazonSSM.GetCommandInvocation":
			polls++
			if polls == 1 {
				w.WriteHeader(http.StatusBadRequest)
				w.Write([]byte(`{"__type":"InvocationDoesNotExist","message":"not yet"}`))
				return
			}
			out, _ := json.Marshal(map[string]any{"Status": "Success", "ResponseCode": 0,
				"StandardOutputContent": ssmBegin + "\n" + gzb64(t, doc) + "\n" + ssmEnd + "\n"})
			w.Write(out)
		default:
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"__type":"InvalidAction","message":"stand-in"}`))
		}
	}))
	defer srv.Close()
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("eu-west-2"),
		config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{}),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")))
	if err != nil {
		t.Fatal(err)
	}
	client := ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	s := NewSSM(client, SSMConfig{MaxConcurrency: 32, TimeoutSeconds: 45, PollInterval: time.Millisecond})
	tg := target.Target{Name: "n", InstanceID: "i-0123456789abcdef0", Transport: target.SSM}
	if err := s.Prepare(context.Background(), []target.Target{tg}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := s.Fetch(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	if f, err := facts.Parse(out); err != nil || f.Host.Hostname != "sdk-node" {
		t.Fatalf("facts = %v, %v", f, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if sent["DocumentName"] != "AWS-RunShellScript" || sent["MaxConcurrency"] != "32" || sent["TimeoutSeconds"] != float64(45) {
		t.Errorf("SendCommand body = %v", sent)
	}
	if ids, _ := sent["InstanceIds"].([]any); len(ids) != 1 || ids[0] != "i-0123456789abcdef0" {
		t.Errorf("InstanceIds = %v", sent["InstanceIds"])
	}
}
