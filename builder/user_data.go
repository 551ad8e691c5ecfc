package builder

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"strings"
	"time"
)

// selfTerminateCloudConfig arms a poweroff at an absolute deadline on every
// boot (bootcmd runs each boot, so a provisioner reboot does not disarm
// it). With shutdown_behavior = terminate, EC2 then deletes the instance:
// nothing outlives a builder that crashed or lost its network.
func selfTerminateCloudConfig(deadline time.Time) string {
	return fmt.Sprintf(`#cloud-config
# elasticsearch-ami: power off (and so terminate) at the build deadline.
bootcmd:
  - [sh, -c, 'left=$(( %d - $(date +%%s) )); if [ "$left" -le 0 ]; then systemctl poweroff || poweroff; else systemd-run --unit=esbake-self-terminate --on-active="${left}s" /bin/systemctl poweroff || (sleep "$left"; poweroff) & fi']
`, deadline.Unix())
}

// userDataContentType picks the MIME type cloud-init dispatches on.
func userDataContentType(data string) (string, error) {
	switch {
	case strings.HasPrefix(data, "#cloud-config"):
		return "text/cloud-config", nil
	case strings.HasPrefix(data, "#!"):
		return "text/x-shellscript", nil
	case strings.HasPrefix(data, "#include"):
		return "text/x-include-url", nil
	case strings.HasPrefix(data, "#cloud-boothook"):
		return "text/cloud-boothook", nil
	}
	return "", fmt.Errorf("user data must start with \"#!\" (a script) or \"#cloud-config\" so it can follow the self-terminate part")
}

// buildUserData is a multipart cloud-init document: the self-terminate
// part first, then the user's own, if any.
func buildUserData(deadline time.Time, extra string) (string, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fmt.Fprintf(&buf, "Content-Type: multipart/mixed; boundary=\"%s\"\nMIME-Version: 1.0\n\n", mw.Boundary())
	parts := []struct{ ctype, body string }{{"text/cloud-config", selfTerminateCloudConfig(deadline)}}
	if extra != "" {
		ct, err := userDataContentType(extra)
		if err != nil {
			return "", err
		}
		parts = append(parts, struct{ ctype, body string }{ct, extra})
	}
	for i, p := range parts {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":        {p.ctype + `; charset="utf-8"`},
			"Content-Disposition": {fmt.Sprintf(`attachment; filename="part-%d"`, i)},
		})
		if err != nil {
			return "", fmt.Errorf("build user data: %w", err)
		}
		if _, err := w.Write([]byte(p.body)); err != nil {
			return "", fmt.Errorf("build user data: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return "", fmt.Errorf("build user data: %w", err)
	}
	return buf.String(), nil
}
