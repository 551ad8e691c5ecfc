package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testpki"
)

// securityParams are where example.pkr.hcl's security block names the
// cluster's material ({cluster} = the cluster name).
var securityParams = map[string]string{
	"transport_key":         "/es/" + clusterTag + "/transport/key",
	"transport_certificate": "/es/" + clusterTag + "/transport/cert",
	"transport_ca":          "/es/" + clusterTag + "/transport/ca",
	"elastic_password":      "/es/" + clusterTag + "/elastic-password",
}

func (d *demo) ssm() *ssm.Client {
	return ssm.New(ssm.Options{Region: region, BaseEndpoint: aws.String(d.lc.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider(testCreds["AWS_ACCESS_KEY_ID"], testCreds["AWS_SECRET_ACCESS_KEY"], "")})
}

// storeSecrets does what docs/esnode.md asks of an operator before the
// first nodes boot: one CA per cluster, a node certificate it signed, and
// the elastic password, as SecureStrings. Elasticsearch 8 does not start
// without transport TLS, and esnode boot refuses a node without it. The
// values are never printed.
func (d *demo) storeSecrets(ctx context.Context) error {
	ca, err := testpki.New(clusterTag + " transport CA (demo)")
	if err != nil {
		return err
	}
	key, cert, _, _, err := ca.Sign("node."+clusterTag, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
	if err != nil {
		return err
	}
	pw := make([]byte, 18)
	if _, err := rand.Read(pw); err != nil {
		return err
	}
	values := map[string]string{
		"transport_key": string(key), "transport_certificate": string(cert), "transport_ca": string(ca.PEM),
		"elastic_password": base64.RawURLEncoding.EncodeToString(pw),
	}
	sc := d.ssm()
	for _, f := range []string{"transport_key", "transport_certificate", "transport_ca", "elastic_password"} {
		name := securityParams[f]
		if _, err := sc.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(values[f]),
			Type: "SecureString", Overwrite: aws.Bool(true)}); err != nil {
			return fmt.Errorf("put %s: %w", name, err)
		}
		fmt.Printf("    %-22s -> SecureString %s\n", f, name)
	}
	sum := sha256.Sum256(ca.Cert.Raw)
	fmt.Printf("    CA %q (SHA-256 %x…); its key stays off the nodes (here: in the demo's memory only)\n", ca.Cert.Subject.CommonName, sum[:8])
	return nil
}
