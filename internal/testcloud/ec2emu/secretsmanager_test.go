package ec2emu

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// TestSecureStringVersions: a SecureString is ciphertext without
// WithDecryption, plaintext with it; every overwrite is a new version that
// name:N and the ARN select; faults hit GetParameter as any other call.
func TestSecureStringVersions(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.ssm("us-east-1")
	for _, v := range []string{"first-secret", "second-secret"} {
		if _, err := c.PutParameter(e.ctx, &ssm.PutParameterInput{Name: aws.String("/es/prod/key"), Value: aws.String(v), Type: "SecureString", Overwrite: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(name string, decrypt bool) *ssm.GetParameterOutput {
		t.Helper()
		out, err := c.GetParameter(e.ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(decrypt)})
		if err != nil {
			t.Fatalf("GetParameter %s: %v", name, err)
		}
		return out
	}
	if v := *get("/es/prod/key", false).Parameter.Value; v == "second-secret" {
		t.Error("SecureString returned in clear without WithDecryption")
	}
	cur := get("/es/prod/key", true).Parameter
	if *cur.Value != "second-secret" || cur.Version != 2 {
		t.Errorf("current %s v%d", *cur.Value, cur.Version)
	}
	if old := get("/es/prod/key:1", true).Parameter; *old.Value != "first-secret" || old.Version != 1 || *old.Selector != ":1" {
		t.Errorf("version 1: %s v%d", *old.Value, old.Version)
	}
	if v := *get(*cur.ARN, true).Parameter.Value; v != "second-secret" {
		t.Errorf("by ARN %s: %s", *cur.ARN, v)
	}
	_, err := c.GetParameter(e.ctx, &ssm.GetParameterInput{Name: aws.String("/es/prod/key:7"), WithDecryption: aws.Bool(true)})
	wantCode(t, err, "ParameterVersionNotFound")
	e.srv.InjectFault(Fault{Action: "GetParameter", Code: "AccessDeniedException", Message: "not allowed"})
	_, err = c.GetParameter(e.ctx, &ssm.GetParameterInput{Name: aws.String("/es/prod/key"), WithDecryption: aws.Bool(true)})
	wantCode(t, err, "AccessDeniedException")
}

// TestSecretsManager: CreateSecret, PutSecretValue (AWSCURRENT moves,
// AWSPREVIOUS keeps the old one), GetSecretValue by name, ARN and partial
// ARN, binary secrets, missing secrets, and injected faults.
func TestSecretsManager(t *testing.T) {
	e := newEnv(t, Options{})
	c := secretsmanager.NewFromConfig(e.cfg("us-east-1", 1), func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(e.url) })
	cr, err := c.CreateSecret(e.ctx, &secretsmanager.CreateSecretInput{Name: aws.String("es/prod/http.p12"), SecretString: aws.String("v1")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutSecretValue(e.ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("es/prod/http.p12"), SecretString: aws.String("v2")}); err != nil {
		t.Fatal(err)
	}
	get := func(in *secretsmanager.GetSecretValueInput) string {
		t.Helper()
		out, err := c.GetSecretValue(e.ctx, in)
		if err != nil {
			t.Fatalf("GetSecretValue: %v", err)
		}
		if out.SecretString == nil {
			return string(out.SecretBinary)
		}
		return *out.SecretString
	}
	if v := get(&secretsmanager.GetSecretValueInput{SecretId: aws.String("es/prod/http.p12")}); v != "v2" {
		t.Errorf("current %q", v)
	}
	if v := get(&secretsmanager.GetSecretValueInput{SecretId: cr.ARN, VersionStage: aws.String("AWSPREVIOUS")}); v != "v1" {
		t.Errorf("previous %q", v)
	}
	partial := (*cr.ARN)[:len(*cr.ARN)-7]
	if v := get(&secretsmanager.GetSecretValueInput{SecretId: aws.String(partial)}); v != "v2" {
		t.Errorf("partial ARN %s: %q", partial, v)
	}
	if _, err := c.CreateSecret(e.ctx, &secretsmanager.CreateSecretInput{Name: aws.String("bin"), SecretBinary: []byte{0, 1, 2}}); err != nil {
		t.Fatal(err)
	}
	if v := get(&secretsmanager.GetSecretValueInput{SecretId: aws.String("bin")}); v != "\x00\x01\x02" {
		t.Errorf("binary %q", v)
	}
	_, err = c.GetSecretValue(e.ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("nope")})
	wantCode(t, err, "ResourceNotFoundException")
	_, err = c.CreateSecret(e.ctx, &secretsmanager.CreateSecretInput{Name: aws.String("bin"), SecretString: aws.String("x")})
	wantCode(t, err, "ResourceExistsException")
	e.srv.InjectFault(Fault{Action: "GetSecretValue", Code: "ThrottlingException"})
	_, err = c.GetSecretValue(e.ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("bin")})
	wantCode(t, err, "ThrottlingException")
	if n := e.srv.CallCount("GetSecretValue"); n < 5 {
		t.Errorf("GetSecretValue calls logged: %d", n)
	}
}
