package boot

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testpki"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// httpsNode is an HTTPS server presenting a certificate from ca.
func httpsNode(t *testing.T, ca *testpki.CA) *httptest.Server {
	t.Helper()
	keyPEM, certPEM, _, _ := ca.Issue(t, "es-http", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "elastic" || p != "drain-pw-123456" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestDrainAccess(t *testing.T) {
	ctx := context.Background()
	ca := testpki.NewCA(t, "cluster-a http CA")
	other := testpki.NewCA(t, "cluster-b http CA")
	sec := spec.Security{HTTPCA: "/es/{cluster}/http/ca", ElasticPassword: "/es/{cluster}/elastic"}
	store := memSecrets{"/es/logs/http/ca": string(ca.PEM), "/es/logs/elastic": "drain-pw-123456\n"}

	get := func(t *testing.T, a *DrainAccess, url string) (int, error) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.SetBasicAuth(a.Username, a.Password)
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: a.TLS}}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	t.Run("password-and-cluster-CA", func(t *testing.T) {
		srv := httpsNode(t, ca)
		// The server's certificate names no IP: only the chain is checked.
		target := &DrainTarget{URL: srv.URL, Cluster: "logs", Security: sec}
		a, err := target.Access(ctx, store)
		if err != nil {
			t.Fatal(err)
		}
		if a.Username != "elastic" || a.Password != "drain-pw-123456" {
			t.Fatalf("credentials %q/%q, want elastic and the stored password without its newline", a.Username, a.Password)
		}
		if code, err := get(t, a, srv.URL); err != nil || code != 200 {
			t.Fatalf("GET over the cluster CA: %d, %v", code, err)
		}
	})
	t.Run("another-cluster's-certificate-refused", func(t *testing.T) {
		srv := httpsNode(t, other)
		a, err := (&DrainTarget{URL: srv.URL, Cluster: "logs", Security: sec}).Access(ctx, store)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := get(t, a, srv.URL); err == nil || !strings.Contains(err.Error(), "does not chain to the cluster's HTTP CA") {
			t.Fatalf("a node with another CA's certificate: %v, want refused", err)
		}
	})
	t.Run("missing-password-names-the-field", func(t *testing.T) {
		_, err := (&DrainTarget{URL: "http://10.0.0.1:9200", Cluster: "other", Security: sec}).Access(ctx, store)
		if err == nil || !strings.Contains(err.Error(), "security elastic_password") || !strings.Contains(err.Error(), "/es/other/elastic") {
			t.Fatalf("err = %v, want the field and the resolved parameter named", err)
		}
	})
	t.Run("https-without-http-material", func(t *testing.T) {
		_, err := (&DrainTarget{URL: "https://10.0.0.1:9200", Cluster: "logs", Security: spec.Security{ElasticPassword: sec.ElasticPassword}}).Access(ctx, store)
		if err == nil || !strings.Contains(err.Error(), "name no HTTP material") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("security-off", func(t *testing.T) {
		a, err := (&DrainTarget{URL: "http://10.0.0.1:9200", Cluster: "logs"}).Access(ctx, memSecrets{})
		if err != nil || a.Username != "" || a.TLS != nil {
			t.Fatalf("no security section: %+v, %v; want no credentials and plain HTTP", a, err)
		}
	})
}
