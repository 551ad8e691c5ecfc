package gate

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// floodComm is a guest whose facts command prints without end (here 64 MiB
// in 1 MiB writes) and counts what it wrote.
type floodComm struct{ wrote int }

func (c *floodComm) Start(_ context.Context, cmd *packersdk.RemoteCmd) error {
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for i := 0; i < 64; i++ {
		n, _ := cmd.Stdout.Write(chunk)
		c.wrote += n
		cmd.Stderr.Write(chunk[:4096])
	}
	cmd.SetExited(0)
	return nil
}

func (c *floodComm) Upload(string, io.Reader, *os.FileInfo) error { return nil }
func (c *floodComm) UploadDir(string, string, []string) error     { return nil }
func (c *floodComm) Download(string, io.Writer) error             { return nil }
func (c *floodComm) DownloadDir(string, string, []string) error   { return nil }

// TestCheckBoundsGuestOutput: the gate keeps at most MaxFactsBytes of the
// guest's stdout and says the output is too large.
func TestCheckBoundsGuestOutput(t *testing.T) {
	_, err := Check(context.Background(), &floodComm{}, "esnode facts", "")
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("err = %v, want the output refused as too large", err)
	}
	w := &capWriter{max: 10}
	w.Write([]byte("0123456789abc"))
	if string(w.buf) != "0123456789" || !w.over {
		t.Errorf("cap kept %q over=%v", w.buf, w.over)
	}
	tw := &capWriter{max: 4, tail: true}
	tw.Write([]byte("abcdef"))
	if string(tw.buf) != "cdef" {
		t.Errorf("tail kept %q", tw.buf)
	}
}
