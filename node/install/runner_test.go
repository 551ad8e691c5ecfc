package install

import (
	"context"
	"strings"
	"testing"
)

func TestExecRunnerEnvironmentAndErrors(t *testing.T) {
	t.Setenv("TMPDIR", "/tmp/inherited")
	t.Setenv("https_proxy", "http://192.0.2.10:3128")
	out, err := ExecRunner{Root: "/"}.Run(context.Background(), Command{Name: "sh", Args: []string{"-c", `echo "tmp=$TMPDIR path=$PATH proxy=$https_proxy extra=$EXTRA"; cat`}, Env: []string{"EXTRA=1"}, Stdin: []byte("from-stdin")})
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, want := range []string{"tmp= ", "path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin ", "proxy=http://192.0.2.10:3128", "extra=1", "from-stdin"} {
		if !strings.Contains(got, want) {
			t.Errorf("output %q lacks %q", got, want)
		}
	}
	_, err = ExecRunner{}.Run(context.Background(), Command{Name: "sh", Args: []string{"-c", "echo dpkg said no; exit 3"}})
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "| dpkg said no") {
		t.Fatalf("err = %v, want the exit status and the output's tail", err)
	}
}

func TestCheckPluginNameMismatch(t *testing.T) {
	dir := t.TempDir()
	z := standinPluginZip(t, "repository-s3", esVersion8, "")
	p := dir + "/x.zip"
	if err := writeFileForTest(p, z); err != nil {
		t.Fatal(err)
	}
	if _, err := checkPlugin("discovery-ec2", esVersion8, p); err == nil || !strings.Contains(err.Error(), `is the plugin "repository-s3"`) {
		t.Fatalf("err = %v", err)
	}
	if err := writeFileForTest(p, []byte("stand-in, not a zip")); err != nil {
		t.Fatal(err)
	}
	if _, err := checkPlugin("discovery-ec2", esVersion8, p); err == nil || !strings.Contains(err.Error(), "not a plugin zip") {
		t.Fatalf("err = %v", err)
	}
}
