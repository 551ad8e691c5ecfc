package ec2emu

import (
	"crypto/rand"
	"encoding/json"
	"strings"
	"time"
)

// smSecret is one Secrets Manager secret and its versions.
type smSecret struct {
	name, arn string
	created   time.Time
	versions  []*smVersion // oldest first; the last holds AWSCURRENT
}

type smVersion struct {
	id      string
	str     string
	bin     []byte
	created time.Time
	stages  []string
}

// dispatchSecretsManager serves the Secrets Manager subset esnode uses
// (JSON 1.1, target secretsmanager.*): CreateSecret, PutSecretValue,
// GetSecretValue (by name, full or partial ARN, VersionId or VersionStage)
// and DeleteSecret (immediate). Runs under s.mu; faults are injected by
// action name as for every other call.
func (s *Server) dispatchSecretsManager(req *request) (any, *apiError) {
	r := req.region
	var in struct {
		Name, SecretId, SecretString, VersionId, VersionStage, ClientRequestToken string
		SecretBinary                                                              []byte
		ForceDeleteWithoutRecovery                                                bool
	}
	if len(req.body) > 0 {
		if err := json.Unmarshal(req.body, &in); err != nil {
			return nil, errf("SerializationException", "cannot decode request JSON: %v", err)
		}
	}
	notFound := errf("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
	addVersion := func(sec *smSecret) (*smVersion, *apiError) {
		if in.SecretString == "" && len(in.SecretBinary) == 0 {
			return nil, errf("InvalidRequestException", "You must provide either SecretString or SecretBinary.")
		}
		if in.SecretString != "" && len(in.SecretBinary) > 0 {
			return nil, errf("InvalidParameterException", "You can't specify both a binary secret value and a string secret value in the same secret.")
		}
		if len(in.SecretString) > 65536 || len(in.SecretBinary) > 65536 {
			return nil, errf("InvalidParameterException", "The secret value exceeds the maximum size of 65536 bytes.")
		}
		id := in.ClientRequestToken
		if id == "" {
			id = newRequestID()
		}
		for _, v := range sec.versions {
			v.stages = removeStage(v.stages, "AWSPREVIOUS")
			if hasStage(v.stages, "AWSCURRENT") {
				v.stages = append(removeStage(v.stages, "AWSCURRENT"), "AWSPREVIOUS")
			}
		}
		v := &smVersion{id: id, str: in.SecretString, bin: in.SecretBinary, created: req.now, stages: []string{"AWSCURRENT"}}
		sec.versions = append(sec.versions, v)
		return v, nil
	}
	switch req.action {
	case "CreateSecret":
		if in.Name == "" {
			return nil, errf("InvalidParameterException", "Name is required.")
		}
		if r.secrets[in.Name] != nil {
			return nil, errf("ResourceExistsException", "The operation failed because the secret %s already exists.", in.Name)
		}
		var suffix [3]byte
		_, _ = rand.Read(suffix[:])
		const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		sfx := []byte{letters[int(suffix[0])%52], letters[int(suffix[1])%52], letters[int(suffix[2])%52], 'Q', 'x', 'Z'}
		sec := &smSecret{name: in.Name, created: req.now, arn: "arn:aws:secretsmanager:" + r.name + ":" + s.account + ":secret:" + in.Name + "-" + string(sfx)}
		v, aerr := addVersion(sec)
		if aerr != nil {
			return nil, aerr
		}
		r.secrets[in.Name] = sec
		return map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": v.id}, nil
	case "PutSecretValue":
		sec := r.findSecret(in.SecretId)
		if sec == nil {
			return nil, notFound
		}
		v, aerr := addVersion(sec)
		if aerr != nil {
			return nil, aerr
		}
		return map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": v.id, "VersionStages": v.stages}, nil
	case "GetSecretValue":
		sec := r.findSecret(in.SecretId)
		if sec == nil {
			return nil, notFound
		}
		stage := in.VersionStage
		if stage == "" && in.VersionId == "" {
			stage = "AWSCURRENT"
		}
		for _, v := range sec.versions {
			if (in.VersionId == "" || v.id == in.VersionId) && (stage == "" || hasStage(v.stages, stage)) {
				out := map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": v.id, "VersionStages": v.stages,
					"CreatedDate": float64(v.created.UnixMilli()) / 1000}
				if v.bin != nil {
					out["SecretBinary"] = v.bin // base64 in JSON, as the API sends it
				} else {
					out["SecretString"] = v.str
				}
				return out, nil
			}
		}
		return nil, errf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: %s, VersionStage: %s", in.VersionId, stage)
	case "DeleteSecret":
		sec := r.findSecret(in.SecretId)
		if sec == nil {
			return nil, notFound
		}
		delete(r.secrets, sec.name)
		return map[string]any{"ARN": sec.arn, "Name": sec.name, "DeletionDate": float64(req.now.UnixMilli()) / 1000}, nil
	}
	return nil, errf("InvalidAction", "The action %s is not implemented by the emulator's Secrets Manager", req.action)
}

// findSecret resolves a SecretId: a name, a full ARN, or a partial ARN
// (without the random suffix).
func (r *region) findSecret(id string) *smSecret {
	if sec := r.secrets[id]; sec != nil {
		return sec
	}
	for _, sec := range r.secrets {
		if sec.arn == id || (strings.HasPrefix(id, "arn:") && sec.arn[:len(sec.arn)-7] == id) {
			return sec
		}
	}
	return nil
}

func hasStage(stages []string, s string) bool {
	for _, x := range stages {
		if x == s {
			return true
		}
	}
	return false
}

func removeStage(stages []string, s string) []string {
	out := stages[:0:0]
	for _, x := range stages {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
